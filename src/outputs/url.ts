/**
 * URL helpers of the outputs (and `doctor`, the `container` stage's API server): reading a `url` key, and the `host:port` a URL
 * needs net permission for.
 *
 * @module
 */
import { type At, describeValue } from "../pipeline/schema.ts";

/** `host:port` of an http(s) URL, for `--allow-net`. */
export function hostPort(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`;
}

/** `host:port` (as {@linkcode hostPort} writes it, or a `listen:` key) → hostname and port. */
export function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(":");
  return [address.slice(0, i).replace(/^\[|\]$/g, ""), Number(address.slice(i + 1))];
}

/** Reads a `url` key: an http(s) URL, returned without trailing slashes. */
export function parseUrl(
  value: unknown,
  at: At,
  example = "http://127.0.0.1:8086",
): string | undefined {
  if (typeof value !== "string") {
    at.report(`expected a URL such as "${example}", got ${describeValue(value)}`);
    return undefined;
  }
  try {
    const u = new URL(value);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("not http");
    return value.replace(/\/+$/, "");
  } catch {
    at.report(`not an http(s) URL: ${JSON.stringify(value)}`);
    return undefined;
  }
}
