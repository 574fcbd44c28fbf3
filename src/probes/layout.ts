/**
 * How user space mirrors the C types a probe shares with it (bpf/<name>.h is the contract):
 * each struct with every member's offset and size, each enum with every enumerator's value.
 * Written by hand, next to the decoder that uses them; src/probes/layout_test.ts compares them
 * whole with the compiled objects' BTF, so the two sides cannot drift apart unnoticed.
 */

/** A member: its byte offset and its size (an array's whole size), or the struct it is. */
export type MemberSpec = readonly [offset: number, size: number | CStruct];

/** One member of a {@linkcode CStruct}. */
export interface CMember {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  /** The struct this member is, when it is one. */
  readonly struct?: CStruct;
}

/** A C struct as user space reads or writes it. */
export interface CStruct<M extends string = string> {
  /** Its tag: `struct <name>` in bpf/*.h and in the object's BTF. */
  readonly name: string;
  /** `sizeof`, trailing padding included. */
  readonly size: number;
  /** Each member's byte offset by name: what decoders index with. */
  readonly offsets: { readonly [K in M]: number };
  /** Every member, padding included, in declaration order. */
  readonly members: readonly CMember[];
}

/**
 * A struct from its members in declaration order, padding members included.
 *
 * @example
 * ```ts
 * const PAIR = cStruct("pair", 8, { a: [0, 4], b: [4, 4] });
 * PAIR.offsets.b; // 4
 * ```
 */
export function cStruct<const M extends { readonly [name: string]: MemberSpec }>(
  name: string,
  size: number,
  members: M,
): CStruct<keyof M & string> {
  const list = Object.entries(members).map(([member, [offset, type]]) =>
    typeof type === "number"
      ? { name: member, offset, size: type }
      : { name: member, offset, size: type.size, struct: type }
  );
  const offsets = Object.fromEntries(list.map((m) => [m.name, m.offset]));
  return { name, size, offsets: offsets as CStruct<keyof M & string>["offsets"], members: list };
}

/** A C enum as user space mirrors it: every enumerator's value, by its C name. */
export interface CEnum<N extends string = string> {
  /** Its tag: `enum <name>`. */
  readonly name: string;
  readonly values: { readonly [K in N]: number };
}

/**
 * An enum whose values are named constants user space already has: pass them by their C
 * names (`cEnum("dns_side", { DNS_SIDE_CLIENT, DNS_SIDE_SERVER })`).
 */
export function cEnum<const V extends { readonly [name: string]: number }>(
  name: string,
  values: V,
): CEnum<keyof V & string> {
  return { name, values };
}

/** An enum of indexes 0, 1, ... that user space reports by a name of its own. */
export interface IndexEnum<N extends string = string> extends CEnum {
  /** The name each index is reported by (a counter's, a tag value), by index. */
  readonly names: readonly N[];
}

/**
 * An enum of indexes from 0 in declaration order, each enumerator with the name user space
 * reports it by, and optionally the last enumerator that counts them (`FOO_COUNT = n`).
 */
export function indexEnum<const E extends { readonly [cName: string]: string }>(
  name: string,
  enumerators: E,
  count?: string,
): IndexEnum<E[keyof E]> {
  const cNames = Object.keys(enumerators);
  const values = Object.fromEntries(cNames.map((c, i) => [c, i]));
  if (count !== undefined) values[count] = cNames.length;
  return { name, values, names: Object.values(enumerators) as E[keyof E][] };
}
