/** Reading a server's Prometheus /metrics text: the samples of one metric, summed by a label. */

export interface MetricSample {
  labels: Record<string, string>;
  value: number;
}

/** GET <baseUrl>/metrics as text; undefined when it does not answer 200. */
export async function scrapeMetrics(
  baseUrl: string,
  headers: Record<string, string> = {},
): Promise<string | undefined> {
  try {
    const response = await fetch(`${baseUrl}/metrics`, {
      headers,
      signal: AbortSignal.timeout(5000),
    });
    const text = await response.text();
    return response.status === 200 ? text : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Every sample of `name` in the exposition text, with its labels. Label values
 * here are plain (no escaped quotes), which is all this benchmark reads.
 */
export function samplesOf(text: string, name: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || (line[name.length] !== "{" && line[name.length] !== " ")) {
      continue;
    }
    const close = line.lastIndexOf("}");
    const labelText = line[name.length] === "{" ? line.slice(name.length + 1, close) : "";
    const value = Number(line.slice((close === -1 ? name.length : close + 1) + 1).split(" ")[0]);
    const labels: Record<string, string> = {};
    for (const match of labelText.matchAll(/(\w+)="([^"]*)"/g)) {
      const [, key, labelValue] = match;
      if (key !== undefined && labelValue !== undefined) labels[key] = labelValue;
    }
    if (Number.isFinite(value)) samples.push({ labels, value });
  }
  return samples;
}

/** The samples of `name` summed per value of `label` (samples without it are left out). */
export function sumByLabel(text: string, name: string, label: string): Map<string, number> {
  const sums = new Map<string, number>();
  for (const { labels, value } of samplesOf(text, name)) {
    const key = labels[label];
    if (key !== undefined) sums.set(key, (sums.get(key) ?? 0) + value);
  }
  return sums;
}

/** The samples of `name` added up; undefined when there are none. */
export function sumOf(text: string, name: string): number | undefined {
  const samples = samplesOf(text, name);
  return samples.length === 0 ? undefined : samples.reduce((sum, s) => sum + s.value, 0);
}
