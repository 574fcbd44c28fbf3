/**
 * The `redact` transform: masks secrets in string fields (by default a bash record's `cmd` and
 * `message`) before they leave the host. A built-in rule set ({@linkcode DEFAULT_REDACT_RULES})
 * catches the usual ways secrets end up on a command line; `rules` adds site-specific ones.
 *
 * ```yaml
 * transforms:
 *   scrub:
 *     type: redact
 *     inputs: [bash]
 *     rules:
 *       - { pattern: "(vault write \\S+ value=)\\S+", replacement: "$1***" }
 * ```
 *
 * Rules keep the non-secret part readable (`mysql -u root -p***`, `https://user:***@host`) and
 * err towards masking too much: a word that only looks like a secret may be masked, a secret
 * should not get through. Regexes are compiled once, at load time.
 */
import type { ConfigError } from "../errors.ts";
import { type At, describeValue, isTable, suggestion } from "../pipeline/schema.ts";
import type { StageDef } from "../pipeline/stage.ts";
import type { Record } from "../record.ts";
import { compileRegex } from "./condition/mod.ts";

/** One compiled rule: every match of `pattern` (global) becomes `replacement`. */
export interface RedactRule {
  /** Always has the `g` flag; used only with `String.prototype.replace` (stateless). */
  readonly pattern: RegExp;
  /** May use `$1`-style groups, as in `String.prototype.replace`. */
  readonly replacement: string;
}

/** A built-in rule, with a name and a one-line note for the docs and tests. */
export interface DefaultRedactRule extends RedactRule {
  readonly name: string;
  readonly note: string;
}

// Building blocks. A secret as one shell word: quoted (the quote is capture group `q`, kept
// around the mask: -p'***') or bare, up to whitespace, a quote, a backtick (the end of the
// command in a bash `message`) or a shell operator.
const word = (q: number) => `(?:(["'])(?:(?!\\${q}).)*\\${q}|[^\\s'"\\x60;&|<>()]+)`;
// The rest of one command (up to a pipe, separator, newline or the backtick ending a message).
const SAME_COMMAND = String.raw`[^|;&\n\x60]*?`;
// Where a shell variable assignment can start: the start of a command, possibly after other
// assignments, or after export/env/declare/... and their flags, or docker's -e/--env.
const ASSIGNMENT_START = String.raw`(?<=(?:(?:^|[;&|(\x60\n])\s*` +
  String.raw`(?:(?:export|env|declare|typeset|readonly|local|sudo)(?:\s+-\w+)*\s+)?` +
  String.raw`(?:[A-Za-z_]\w*=[^\s;&|]*\s+)*|(?:\s-e|--env|--build-arg)[\s=]["']?))`;

// Words in a variable name that mark its value as a secret (matched in any case).
const ENV_SECRET = "(?:PASSWORD|PASSWD|PASSPHRASE|TOKEN|SECRET|KEY|CREDENTIAL)";
// Identifier parts are bounded ({0,64}) so a pathological line costs linear, not quadratic,
// time; real option and variable names are far shorter.

const rule = (name: string, note: string, source: string, flags: string, replacement: string) =>
  Object.freeze({ name, note, pattern: new RegExp(source, `g${flags}`), replacement });

/**
 * The built-in rules, applied in this order before any user rules (`defaults: false` turns
 * them off). Each keeps what says *what* the secret is and masks the secret itself.
 */
export const DEFAULT_REDACT_RULES: readonly DefaultRedactRule[] = Object.freeze([
  rule(
    "private_key",
    "-----BEGIN ... PRIVATE KEY----- blocks: the key body (to the END line, or to the end of the text if cut)",
    String
      .raw`(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)`,
    "",
    "$1***$2",
  ),
  rule(
    "url_credentials",
    "passwords in URLs: https://user:***@host, postgres://app:***@db/x",
    String.raw`(\b[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s/?#@:'"\x60]*:)[^\s/'"\x60]+@`,
    "",
    "$1***@",
  ),
  rule(
    "authorization_header",
    "Authorization: Bearer/Basic/... headers (curl -H, wget --header, httpie): Authorization: Bearer ***",
    String.raw`(\b(?:Proxy-)?Authorization:\s*["']?` +
      String
        .raw`(?:(?:Bearer|Basic|Token|Digest|Negotiate|NTLM|Bot|ApiKey|AWS4-HMAC-SHA256)\s+)?)` +
      String.raw`[^\s'"\x60][^'"\x60\n]*`,
    "i",
    "$1***",
  ),
  rule(
    "cookie_header",
    "Cookie: and Set-Cookie: headers (session ids): Cookie: ***",
    String.raw`(\b(?:Set-)?Cookie:\s*["']?)[^\s'"\x60][^'"\x60\n]*`,
    "i",
    "$1***",
  ),
  rule(
    "secret_option",
    "long options named for a secret: --password=***, --password ***, --db-password, --token, --client-secret, --api-key",
    String.raw`(--(?!no-)(?:[\w-]{0,40}?[-_])?` +
      String
        .raw`(?:password|passwd|passphrase|pass|pwd|token|secret|secret[-_]?key|api[-_]?key|apikey|access[-_]?key|credentials?)` +
      String.raw`(?:=|\s+(?!-)))${word(2)}`,
    "i",
    "$1$2***$2",
  ),
  rule(
    "mysql_password",
    "-psecret / -p'secret' after mysql, mysqldump, mysqladmin, mariadb, ...: -p*** (other tools' -p is left alone)",
    String.raw`(\b(?:mysql|mariadb)[\w-]*(?=\s)${SAME_COMMAND}\s-p)${word(2)}`,
    "",
    "$1$2***$2",
  ),
  rule(
    "sshpass",
    "sshpass -p secret / -psecret: sshpass -p *** (the -p of the ssh it runs is left alone)",
    String.raw`(\bsshpass(?:\s+-[fdP]\s*\S+|\s+-[ev])*\s+-p\s*)${word(2)}`,
    "",
    "$1$2***$2",
  ),
  rule(
    "registry_login",
    "docker/podman/nerdctl/buildah/skopeo/helm registry login -p secret: -p ***",
    String.raw`(\b(?:docker|podman|nerdctl|buildah|skopeo|helm\s+registry|oras)\s+login\b` +
      String.raw`${SAME_COMMAND}\s-p(?:\s+|=)?)${word(2)}`,
    "",
    "$1$2***$2",
  ),
  rule(
    "redis_password",
    "redis-cli -a secret: -a ***",
    String.raw`(\bredis-cli\b${SAME_COMMAND}\s-a\s*)${word(2)}`,
    "",
    "$1$2***$2",
  ),
  rule(
    "curl_user",
    "curl -u user:secret / --user user:secret: -u user:***",
    String.raw`(\bcurl\b${SAME_COMMAND}\s(?:-u|--user)(?:\s+|=)?["']?[^\s:'"\x60]*:)[^\s'"\x60]+`,
    "",
    "$1***",
  ),
  rule(
    "openssl_pass",
    "openssl -pass/-passin/-passout pass:secret: pass:***",
    String.raw`(\s-pass(?:word|in|out)?\s+["']?pass:)[^\s'"\x60]+`,
    "",
    "$1***",
  ),
  rule(
    "secret_env",
    "assignments to variables named for a secret (PASSWORD, PASSWD, PASSPHRASE, TOKEN, SECRET, KEY, CREDENTIAL, any case): export GITHUB_TOKEN=***",
    String.raw`(?<![\w-])(?=[A-Za-z_]\w{0,64}?${ENV_SECRET})${ASSIGNMENT_START}` +
      String.raw`([A-Za-z_]\w{0,64}?${ENV_SECRET}\w{0,64}=)${word(2)}`,
    "i",
    "$1$2***$2",
  ),
  rule(
    "secret_assignment",
    "key=value or key: value anywhere (URLs, JSON, config) for password, passwd, pwd, pass, token, secret, api_key, apikey, api-key, access_key, ...: password=***",
    String.raw`((?<![\w-])["']?(?:[\w-]{0,64}` +
      String
        .raw`(?:password|passwd|passphrase|token|secret|api[-_]?key|apikey|access[-_]?key|private[-_]?key|credentials?)` +
      String.raw`|(?:[\w-]{0,64}[-_])?(?:pwd|pass))["']?\s*(?:=|:(?=[\s"'])\s*))(?!=)${word(2)}`,
    "i",
    "$1$2***$2",
  ),
  rule(
    "aws_access_key_id",
    "AWS access key ids (AKIA/ASIA + 16): AKIA***",
    String.raw`\b(AKIA|ASIA)[0-9A-Z]{16}\b`,
    "",
    "$1***",
  ),
  rule(
    "known_tokens",
    "tokens with a known prefix: GitHub ghp_/gho_/ghu_/ghs_/ghr_/github_pat_, GitLab glpat-, Slack xox?-, npm_, Stripe sk_live_/rk_live_: ghp_***",
    String
      .raw`\b(gh[pousr]_(?=[A-Za-z0-9]{36})|github_pat_(?=[A-Za-z0-9_]{22})|glpat-(?=[A-Za-z0-9_-]{20})` +
      String
        .raw`|xox[abposr]-(?=[A-Za-z0-9-]{10})|npm_(?=[A-Za-z0-9]{36})|[sr]k_live_(?=[A-Za-z0-9]{24}))` +
      String.raw`[A-Za-z0-9_-]+`,
    "",
    "$1***",
  ),
]);

/** Applies `rules` in order to `text`; returns `text` itself when nothing matched. */
export function redactText(text: string, rules: readonly RedactRule[]): string {
  let out = text;
  for (const r of rules) out = out.replace(r.pattern, r.replacement);
  return out;
}

/** Options of a `redact` transform. */
export interface RedactConfig {
  /** String fields to redact; other types and missing fields are left alone. */
  fields: string[];
  /** Apply {@linkcode DEFAULT_REDACT_RULES} first. */
  defaults: boolean;
  /** The user's rules, applied after the defaults. */
  rules: RedactRule[];
}

const RULE_KEYS = ["pattern", "flags", "replacement"];

/** Reads `rules`: a list of `{ pattern, flags?, replacement? }`, each compiled here. */
function parseRules(value: unknown, at: At): RedactRule[] {
  if (!Array.isArray(value)) {
    at.report(`expected a list of rules such as - { pattern: "..." }, got ${describeValue(value)}`);
    return [];
  }
  const rules: RedactRule[] = [];
  value.forEach((item, i) => {
    const ruleAt = at.child(i);
    if (!isTable(item)) {
      ruleAt.report(
        `expected a rule { pattern, flags?, replacement? }, got ${describeValue(item)}`,
      );
      return;
    }
    for (const key of Object.keys(item)) {
      if (RULE_KEYS.includes(key)) continue;
      ruleAt.child(key).reportKey(
        `unknown key "${key}"${suggestion(key, RULE_KEYS)}; known: ${RULE_KEYS.join(", ")}`,
      );
    }
    const pattern = compileRegex(
      item.pattern,
      item.flags,
      ruleAt.child("pattern"),
      ruleAt.child("flags"),
      "y", // sticky would stop at the first non-match
      "g", // every match is masked
    );
    let replacement = "***";
    if (item.replacement !== undefined && item.replacement !== null) {
      if (typeof item.replacement === "string") replacement = item.replacement;
      else {
        ruleAt.child("replacement").report(
          `expected a string such as "***" or "$1***", got ${describeValue(item.replacement)}`,
        );
        return;
      }
    }
    if (!pattern) return;
    if ("".replace(pattern, "x") !== "") {
      ruleAt.child("pattern").report(
        "the pattern matches the empty string, so it would insert the replacement everywhere",
      );
      return;
    }
    const missing = missingGroup(replacement, groupCount(pattern));
    if (missing !== undefined) {
      ruleAt.child("replacement").report(missing);
      return;
    }
    rules.push({ pattern, replacement });
  });
  return rules;
}

function groupCount(re: RegExp): number {
  // An alternative that matches the empty string makes exec report every group.
  return new RegExp(`${re.source}|`, re.flags.replace("g", "")).exec("")!.length - 1;
}

// `$n` / `$nn` that refer to no group would be inserted literally: almost surely a mistake.
function missingGroup(replacement: string, groups: number): string | undefined {
  for (let i = 0; i < replacement.length - 1; i++) {
    if (replacement[i] !== "$") continue;
    if (replacement[i + 1] === "$") {
      i++;
      continue;
    }
    const one = replacement.charCodeAt(i + 1) - 48;
    if (one < 0 || one > 9) continue;
    const next = replacement.charCodeAt(i + 2) - 48;
    const two = next >= 0 && next <= 9 ? one * 10 + next : -1;
    if ((two >= 1 && two <= groups) || (one >= 1 && one <= groups)) continue;
    return `uses $${one} but the pattern has ${groups} group${groups === 1 ? "" : "s"}` +
      ` (write $$ for a literal $)`;
  }
  return undefined;
}

/** `type: redact`: masks secrets in string fields. */
export const redactTransform: StageDef<RedactConfig> = {
  type: "redact",
  kind: "transform",
  describe: "Masks secrets (passwords, tokens, keys) in string fields such as a command line.",
  schema: {
    fields: {
      type: "strings",
      default: ["cmd", "message"],
      doc: "String fields to redact; fields that are missing or not strings are left alone.",
    },
    defaults: {
      type: "boolean",
      default: true,
      doc: "Apply the built-in rules for secrets in shell commands before your own rules.",
    },
    rules: {
      type: "custom",
      default: [],
      doc: `Your rules, after the defaults: a list of { pattern, flags?, replacement? = "***" }.`,
      parse: parseRules,
    },
  },
  validate(config, at): ConfigError[] {
    const errors: ConfigError[] = [];
    if (config.fields.length === 0) {
      errors.push(at.child("fields").problem("needs at least one field to redact"));
    }
    if (!config.defaults && config.rules.length === 0) {
      errors.push(
        at.child("defaults").problem("nothing to redact: defaults is false and there are no rules"),
      );
    }
    return errors;
  },
  build(config, ctx) {
    const rules = [...(config.defaults ? DEFAULT_REDACT_RULES : []), ...config.rules];
    const names = [...new Set(config.fields)];
    return {
      push(record) {
        let fields: Record["fields"] | undefined;
        let changed = 0;
        for (const name of names) {
          if (!Object.hasOwn(record.fields, name)) continue;
          const value = record.fields[name];
          if (typeof value !== "string") continue;
          const masked = redactText(value, rules);
          if (masked === value) continue;
          // Copy before the first change: another branch may hold the same record.
          fields ??= { ...record.fields };
          fields[name] = masked;
          changed++;
        }
        if (fields === undefined) return ctx.emit(record);
        ctx.counters.add("fields_redacted", changed);
        ctx.emit({ ...record, fields });
      },
      flush() {},
      close() {},
    };
  },
  explain(config) {
    const counts = [
      config.defaults ? `${DEFAULT_REDACT_RULES.length} default rules` : "",
      config.rules.length > 0
        ? `${config.rules.length} rule${config.rules.length === 1 ? "" : "s"}`
        : "",
    ].filter((s) => s !== "").join(" + ");
    // User patterns are not shown: they may hold a secret written in with ${VAR}.
    const details = [`fields ${config.fields.join(", ")}; ${counts}`];
    if (config.defaults) {
      details.push(`default rules: ${DEFAULT_REDACT_RULES.map((r) => r.name).join(", ")}`);
    }
    details.push("each changed field is counted as fields_redacted");
    return { details };
  },
  tagsUsed: () => [], // fields only
  example: {
    fields: ["cmd", "message"],
    rules: [{ pattern: "(vault kv put \\S+ \\w+=)\\S+", replacement: "$1***" }],
  },
};
