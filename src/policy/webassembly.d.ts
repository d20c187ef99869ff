/**
 * The part of the WebAssembly JavaScript API the policy loader uses. Node has
 * it built in, but TypeScript declares it only in its DOM libraries, which
 * would bring browser globals into a server's code.
 */
declare namespace WebAssembly {
  /** A compiled module: instantiated per worker thread, and posted to them as it is. */
  class Module {
    private readonly compiledModule: never;
  }
  function compile(bytes: Uint8Array): Promise<Module>;
}
