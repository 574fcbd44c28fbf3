/**
 * The condition language: a YAML value that says which records match, shared by `filter` (and
 * later by other transforms, and by pipeline tests). {@linkcode parseCondition} compiles it once, at load time, into a
 * predicate; regexes and CIDRs are built there, so testing a record allocates nothing but what
 * the value needs (a parsed IP, a number read from a string).
 *
 * ```yaml
 * drop:
 *   any:
 *     - { field: cmd, regex: "^(ls|cd|pwd)( |$)" }
 *     - all:
 *         - { tag: host, prefix: "ci-" }
 *         - { field: user, in: [runner, builder] }
 *     - not: { field: pid, gt: 1000 }
 * ```
 *
 * A leaf names one value (`tag: <name>` or `field: <name>`) and one operator:
 *
 * - `equals: <scalar>`, `in: [<scalar>, ...]` (a single scalar counts as a list of one).
 *   On a tag both compare the scalar's text (`equals: 5` matches the tag `"5"`). On a field:
 *   a string matches a field whose text is exactly that string (a string field as is, an integer
 *   as its digits, so `equals: "18446744073709551615"` reaches integers past 2^53); a number
 *   matches a field of the same numeric value (integer `5n`, float `5`, or a string holding a
 *   number such as pid `"4242"`); a boolean matches only a boolean field.
 * - `prefix`, `suffix`, `contains: <string>`: on the value's text (an integer's digits).
 * - `regex: <JS regex source>` with an optional sibling `flags: "m"` or `"s"`. It runs on V8's
 *   linear-time engine, so no pattern can stall the collector: one that engine cannot run
 *   (backreferences, lookahead, counted repetition above 16, the flags i, u, v, d) is refused
 *   at load (see {@linkcode compileRegex}).
 * - `cidr: <"10.0.0.0/8" | "fd00::/8" | "10.1.2.3" | list>`: the value must be an IP address;
 *   an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) also matches IPv4 networks.
 * - `gt`, `gte`, `lt`, `lte: <number>` (or a quoted integer past 2^53): numeric, exact for
 *   integers; a string holding a number compares as that number; anything else never matches.
 * - `exists: true | false`.
 *
 * A missing tag or field makes every operator false except `exists: false`.
 *
 * @module
 */
export { type Condition, describeCondition, parseCondition } from "./tree.ts";
export { CONDITION_OPERATORS, type ConditionOperator } from "./operators.ts";
export { compileRegex } from "./regex.ts";
