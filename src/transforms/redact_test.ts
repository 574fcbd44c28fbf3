import assert from "node:assert/strict";
import { buildStage, configureStage } from "../pipeline/testing.ts";
import { bashMessage } from "../probes/bash_event.ts";
import type { Record } from "../record.ts";
import { DEFAULT_REDACT_RULES, type RedactConfig, redactText, redactTransform } from "./redact.ts";

const T = 1_764_085_464_123_456_789n;

function bash(cmd: string): Record {
  return {
    measurement: "bash",
    tags: { host: "web-1", source: "bash" },
    fields: { cmd, message: bashMessage(T, "4242", "root", cmd), pid: "4242", user: "root" },
    time: T,
  };
}

const redacted = { stage: "redact" };

// [default rule that must catch it, command, expected result]
const SECRETS: [string, string, string][] = [
  [
    "private_key",
    "printf '-----BEGIN RSA PRIVATE KEY-----\\nMIIEpAIBAAKCAQEA7\\n-----END RSA PRIVATE KEY-----\\n' > id",
    "printf '-----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY-----\\n' > id",
  ],
  [
    "private_key",
    "echo '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----' | ssh-add -",
    "echo '-----BEGIN OPENSSH PRIVATE KEY-----***-----END OPENSSH PRIVATE KEY-----' | ssh-add -",
  ],
  [
    "private_key",
    "cat <<EOF > k.pem\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC", // cut before the END line
    "cat <<EOF > k.pem\n-----BEGIN PRIVATE KEY-----***",
  ],
  [
    "url_credentials",
    "git clone https://deploy:Xk9#pQ2@github.com/acme/infra.git",
    "git clone https://deploy:***@github.com/acme/infra.git",
  ],
  [
    "url_credentials",
    "psql postgres://app:s3cr3t@db.internal:5432/orders -c 'select 1'",
    "psql postgres://app:***@db.internal:5432/orders -c 'select 1'",
  ],
  [
    "authorization_header",
    `curl -H "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc" -H "Accept: application/json" https://api.example.com/v1/me`,
    `curl -H "Authorization: Bearer ***" -H "Accept: application/json" https://api.example.com/v1/me`,
  ],
  [
    "authorization_header",
    "curl -sH 'Authorization: Basic dXNlcjpwYXNzd29yZA==' https://nexus.local/service/rest",
    "curl -sH 'Authorization: Basic ***' https://nexus.local/service/rest",
  ],
  [
    "cookie_header",
    `curl -H "Cookie: session=9f8e7d6c5b4a; csrftoken=abc" https://app.local/admin`,
    `curl -H "Cookie: ***" https://app.local/admin`,
  ],
  [
    "secret_option",
    "mysql --user=root --password=hunter2 -e 'show databases'",
    "mysql --user=root --password=*** -e 'show databases'",
  ],
  [
    "secret_option",
    "az login --service-principal -u http://app --password 'S3cret Phrase' --tenant t",
    "az login --service-principal -u http://app --password '***' --tenant t",
  ],
  [
    "secret_option",
    "vault login --method=userpass username=admin --token s.abcdef123",
    "vault login --method=userpass username=admin --token ***",
  ],
  [
    "secret_option",
    "terraform apply --client-secret=abc123 --db-password x",
    "terraform apply --client-secret=*** --db-password ***",
  ],
  ["mysql_password", "mysql -u root -psecret", "mysql -u root -p***"],
  [
    "mysql_password",
    "mysql -h db -P 3306 -u app -p'my pass' shop",
    "mysql -h db -P 3306 -u app -p'***' shop",
  ],
  [
    "mysql_password",
    "mysqldump -uroot -pS3cr3t! --all-databases | gzip > all.sql.gz",
    "mysqldump -uroot -p*** --all-databases | gzip > all.sql.gz",
  ],
  [
    "mysql_password",
    'mariadb-dump -u backup -p"pa ss" shop',
    'mariadb-dump -u backup -p"***" shop',
  ],
  [
    "sshpass",
    "sshpass -p 'S3cr3t!' ssh -p 2222 deploy@10.0.0.5",
    "sshpass -p '***' ssh -p 2222 deploy@10.0.0.5",
  ],
  ["sshpass", "sshpass -psecret scp f host:", "sshpass -p*** scp f host:"],
  [
    "registry_login",
    "docker login -u ci -p dckr_pat_abc123 registry.example.com",
    "docker login -u ci -p *** registry.example.com",
  ],
  ["redis_password", "redis-cli -h cache -a s3cret ping", "redis-cli -h cache -a *** ping"],
  [
    "curl_user",
    "curl -u admin:s3cret -X POST https://jenkins.local/job/x/build",
    "curl -u admin:*** -X POST https://jenkins.local/job/x/build",
  ],
  [
    "openssl_pass",
    "openssl pkcs12 -export -in c.pem -passout pass:s3cret -out c.p12",
    "openssl pkcs12 -export -in c.pem -passout pass:*** -out c.p12",
  ],
  [
    "secret_env",
    "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "export AWS_SECRET_ACCESS_KEY=***",
  ],
  [
    "secret_env",
    "export GITHUB_TOKEN=ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "export GITHUB_TOKEN=***",
  ],
  [
    "secret_env",
    "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=abc aws s3 ls",
    "AWS_ACCESS_KEY_ID=*** AWS_SECRET_ACCESS_KEY=*** aws s3 ls",
  ],
  [
    "secret_env",
    "cd app && export db_password='x y' && make",
    "cd app && export db_password='***' && make",
  ],
  [
    "secret_env",
    "docker run -e API_KEY=abc123 -p 8080:80 app",
    "docker run -e API_KEY=*** -p 8080:80 app",
  ],
  ["secret_env", "export MY_CREDENTIALS=a:b", "export MY_CREDENTIALS=***"],
  [
    "secret_assignment",
    "./deploy.sh password=hunter2 env=prod",
    "./deploy.sh password=*** env=prod",
  ],
  ["secret_assignment", `echo "passwd: hunter2" >> notes`, `echo "passwd: ***" >> notes`],
  ["secret_assignment", "mysql_config pwd=abc", "mysql_config pwd=***"],
  [
    "secret_assignment",
    "curl 'https://api.example.com/v1?api_key=abc123&token=t0k&user=me'",
    "curl 'https://api.example.com/v1?api_key=***&token=***&user=me'",
  ],
  [
    "secret_assignment",
    `curl -d '{"user": "bob", "password": "hunter2"}' https://x`,
    `curl -d '{"user": "bob", "password": "***"}' https://x`,
  ],
  [
    "secret_assignment",
    "tool secret=abc apikey=def api-key=ghi access_key=jkl",
    "tool secret=*** apikey=*** api-key=*** access_key=***",
  ],
  [
    "secret_assignment",
    "kubectl create secret generic db --from-literal=password=abc",
    "kubectl create secret generic db --from-literal=password=***",
  ],
  [
    "aws_access_key_id",
    "aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE",
    "aws configure set aws_access_key_id AKIA***",
  ],
  [
    "known_tokens",
    "git remote set-url origin https://ghp_16C7e42F292c6912E7710c838347Ae178B4a@github.com/a/b",
    "git remote set-url origin https://ghp_***@github.com/a/b",
  ],
  [
    "known_tokens",
    "curl -X POST -d text=hi https://slack.com/api/chat.postMessage?t=xoxb-1234-5678-abcdefgh",
    "curl -X POST -d text=hi https://slack.com/api/chat.postMessage?t=xoxb-***",
  ],
];

// Commands with nothing secret: every default rule must leave them as they are.
const INNOCENT = [
  "ls -la",
  "mkdir -p /tmp/x",
  "git log --pretty=format:%h",
  "grep -r token src/",
  "echo hello",
  "ssh -p 2222 host",
  "mysql -u root -p",
  "mysql -u root -p shop",
  "mysql -h db -P 3306 -u app --protocol=tcp",
  "ps aux | grep mysql; mkdir -p out",
  "cat /etc/passwd",
  "passwd alice",
  "sort --key=2 data.txt",
  "ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null host",
  "export PATH=$PATH:/usr/local/bin",
  "docker run -p 8080:80 -v /secret:/secret nginx",
  "docker login --password-stdin -u ci registry.example.com",
  "psql --no-password -h db shop",
  "sshpass -f ~/.pw ssh -p 2222 host",
  "git clone https://github.com/denoland/deno.git",
  "curl -H 'Accept: application/json' https://api.example.com:8443/v1",
  "curl -u admin https://jenkins.local",
  "kubectl get secret db -o yaml",
  "gpg --list-secret-keys",
  "ssh-keygen -t ed25519 -f ~/.ssh/id_ed25519",
  `[ "$token" == "" ] && echo empty`,
  "history | tail -n 20",
];

Deno.test("DEFAULT_REDACT_RULES mask each kind of secret and keep the rest readable", () => {
  for (const [name, cmd, want] of SECRETS) {
    assert.equal(redactText(cmd, DEFAULT_REDACT_RULES), want, `${name}: ${cmd}`);
    const only = DEFAULT_REDACT_RULES.filter((r) => r.name === name);
    assert.notEqual(redactText(cmd, only), cmd, `${name} on its own catches ${cmd}`);
  }
});

Deno.test("DEFAULT_REDACT_RULES: every rule is tested and has a one-line note", () => {
  const tested = new Set(SECRETS.map(([name]) => name));
  for (const r of DEFAULT_REDACT_RULES) {
    assert.ok(tested.has(r.name), `no test for ${r.name}`);
    assert.ok(r.note.length > 0 && !r.note.includes("\n"), r.name);
    assert.ok(r.pattern.global, `${r.name} is global`);
  }
  assert.equal(new Set(DEFAULT_REDACT_RULES.map((r) => r.name)).size, DEFAULT_REDACT_RULES.length);
});

Deno.test("DEFAULT_REDACT_RULES leave innocent commands unchanged", () => {
  for (const cmd of INNOCENT) assert.equal(redactText(cmd, DEFAULT_REDACT_RULES), cmd);
  for (const cmd of INNOCENT) {
    const message = bashMessage(T, "1", "root", cmd);
    assert.equal(redactText(message, DEFAULT_REDACT_RULES), message);
  }
});

Deno.test("DEFAULT_REDACT_RULES stay fast on a pathological 16 KiB line", () => {
  const lines = [
    "--a-b".repeat(3300),
    "A=1 ".repeat(4100),
    "tokentoken".repeat(1640),
    "x".repeat(16384),
  ];
  for (const line of lines) {
    const start = performance.now();
    redactText(line, DEFAULT_REDACT_RULES);
    assert.ok(performance.now() - start < 200, line.slice(0, 20));
  }
});

Deno.test("redact masks cmd and message, counting fields_redacted, without touching the input", async () => {
  const { stage, emitted, counters } = await buildStage(redactTransform, {});
  const input = bash("mysql -u root -psecret shop");
  const before = structuredClone(input);
  await stage.push(input);
  assert.deepEqual(input, before, "the input record is not mutated");
  assert.equal(emitted.length, 1);
  assert.notEqual(emitted[0], input);
  assert.equal(emitted[0].fields.cmd, "mysql -u root -p*** shop");
  assert.equal(
    emitted[0].fields.message,
    bashMessage(T, "4242", "root", "mysql -u root -p*** shop"),
  );
  assert.deepEqual(emitted[0].tags, input.tags);
  assert.equal(emitted[0].time, input.time);
  assert.equal(counters.get("fields_redacted", redacted), 2n);
});

Deno.test("redact passes a record with nothing to mask on as it is", async () => {
  const { stage, emitted, counters } = await buildStage(redactTransform, {});
  const input = bash("ls -la");
  await stage.push(input);
  assert.equal(emitted[0], input);
  assert.equal(counters.get("fields_redacted", redacted), 0n);
});

Deno.test("redact leaves missing and non-string fields alone", async () => {
  const { stage, emitted } = await buildStage(redactTransform, { fields: ["cmd", "nope", "n"] });
  const input = bash("echo password=x");
  input.fields.n = 5n;
  await stage.push(input);
  assert.equal(emitted[0].fields.cmd, "echo password=***");
  assert.equal(emitted[0].fields.n, 5n);
  assert.ok(!("nope" in emitted[0].fields));
  assert.equal(emitted[0].fields.message, input.fields.message, "message is not listed");
});

Deno.test("redact applies user rules after the defaults, with groups and flags", async () => {
  const { stage, emitted, counters } = await buildStage(redactTransform, {
    fields: ["cmd"],
    rules: [
      { pattern: "(vault kv put \\S+ \\w+=)\\S+", replacement: "$1<hidden>" },
      { pattern: "^echo (?:CUSTOMER|customer)-\\d+", flags: "m" },
    ],
  });
  await stage.push(bash("vault kv put secret/app api=xyz &&\necho customer-42 --password=p"));
  assert.equal(
    emitted[0].fields.cmd,
    "vault kv put secret/app api=<hidden> &&\n*** --password=***",
  );
  assert.equal(counters.get("fields_redacted", redacted), 1n);
});

Deno.test("redact with defaults: false applies only the user's rules", async () => {
  const { stage, emitted } = await buildStage(redactTransform, {
    defaults: false,
    fields: ["cmd"],
    rules: [{ pattern: "hunter2", replacement: "[x]" }],
  });
  await stage.push(bash("mysql -psecret # hunter2"));
  assert.equal(emitted[0].fields.cmd, "mysql -psecret # [x]");
});

Deno.test("redact reports a bad rule at its own key", () => {
  const { errors } = configureStage(redactTransform, {
    rules: [
      { pattern: "ok" },
      { pattern: "(unclosed" },
      { pattern: "x", flags: "y" },
      { pattern: "x", replacment: "y" },
      { pattern: "(a)", replacement: "$2" },
      { pattern: "a*" },
      { replacement: "x" },
      "just a string",
      { pattern: "b", replacement: 5 },
    ],
  });
  assert.deepEqual(errors.map((e) => `${e.path}: ${e.reason}`), [
    "test.redact.rules[1].pattern: invalid regex: Unterminated group",
    `test.redact.rules[2].flags: flag "y" is not allowed here (allowed: g, m, s)`,
    `test.redact.rules[3].replacment: unknown key "replacment" (did you mean "replacement"?); ` +
    "known: pattern, flags, replacement",
    "test.redact.rules[4].replacement: uses $2 but the pattern has 1 group (write $$ for a literal $)",
    "test.redact.rules[5].pattern: the pattern matches the empty string, so it would insert the " +
    "replacement everywhere",
    "test.redact.rules[6].pattern: expected a regex (a non-empty string), got nothing",
    `test.redact.rules[7]: expected a rule { pattern, flags?, replacement? }, got "just a string"`,
    `test.redact.rules[8].replacement: expected a string such as "***" or "$1***", got 5`,
  ]);
  for (const e of errors) assert.ok(e.line > 0 && e.column > 0, e.message);
  const notList = configureStage(redactTransform, { rules: { pattern: "x" } });
  assert.match(notList.errors[0].reason, /^expected a list of rules/);
});

Deno.test("redact accepts $$, $& and two-digit groups in replacements", () => {
  const ok = configureStage(redactTransform, {
    rules: [
      { pattern: "(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)", replacement: "$11-$$1-$&" },
      { pattern: "z", replacement: "" },
    ],
  });
  assert.deepEqual(ok.errors, []);
});

Deno.test("redact needs something to do", () => {
  const none = configureStage(redactTransform, { defaults: false });
  assert.deepEqual(none.errors.map((e) => `${e.path}: ${e.reason}`), [
    "test.redact.defaults: nothing to redact: defaults is false and there are no rules",
  ]);
  const noFields = configureStage(redactTransform, { fields: [] });
  assert.deepEqual(noFields.errors.map((e) => `${e.path}: ${e.reason}`), [
    "test.redact.fields: needs at least one field to redact",
  ]);
});

Deno.test("redact explains its fields and rule counts, never the user's patterns", () => {
  const { config } = configureStage(redactTransform, {
    rules: [{ pattern: "hunter2" }, { pattern: "letmein" }],
  });
  const details = redactTransform.explain?.(config as RedactConfig).details ?? [];
  assert.equal(
    details[0],
    `fields cmd, message; ${DEFAULT_REDACT_RULES.length} default rules + 2 rules`,
  );
  assert.match(details[1], /^default rules: private_key, url_credentials, /);
  assert.ok(!details.join("\n").includes("hunter2"));
  const only = configureStage(redactTransform, {
    defaults: false,
    fields: "cmd",
    rules: [{ pattern: "x" }],
  });
  assert.deepEqual(redactTransform.explain?.(only.config as RedactConfig).details, [
    "fields cmd; 1 rule",
    "each changed field is counted as fields_redacted",
  ]);
});

Deno.test("redact runs user rules in linear time and refuses what needs backtracking", async () => {
  const { stage, emitted } = await buildStage(redactTransform, {
    defaults: false,
    fields: ["cmd"],
    rules: [{ pattern: "(x+x+)+y" }],
  });
  const started = performance.now();
  await stage.push(bash("x".repeat(16 * 1024)));
  assert.ok(performance.now() - started < 1000, "backtracking would take forever");
  assert.equal(emitted[0].fields.cmd, "x".repeat(16 * 1024));

  const { errors } = configureStage(redactTransform, {
    rules: [{ pattern: "(['\"]).*?\\1" }, { pattern: "token(?=:)" }],
  });
  assert.deepEqual(errors.map((e) => e.path), [
    "test.redact.rules[0].pattern",
    "test.redact.rules[1].pattern",
  ]);
  for (const e of errors) assert.match(e.reason, /^cannot run in linear time: /);
});

Deno.test("the built-in rules (backtracking, for their lookaround) stay fast on adversarial 16 KiB commands", () => {
  // Each a way to make a rule start a match at every few characters and scan on.
  const units = [
    "a",
    " ",
    "-",
    "'",
    '"a',
    "=",
    "curl ",
    "curl -u a ",
    "curl --user a",
    "mysql ",
    "mysqlx ",
    "mysql -p",
    " -p",
    "redis-cli ",
    "redis-cli -a",
    "docker login ",
    "oras login ",
    "helm registry login ",
    "sshpass -f a ",
    "sshpass -p",
    " -pass pass",
    "--password ",
    "--password-",
    "--a-",
    "--x-y-z-",
    "--no-password=",
    "export A=",
    "export a=b ",
    "A=b ",
    "A_TOKEN",
    "KEY",
    "declare -x ",
    " -e '",
    "--env=",
    "password=",
    "password: ",
    "x_pass",
    "a-pwd ",
    "_token",
    "Authorization: ",
    "Authorization: Bearer ",
    "Set-Cookie: ",
    "a://",
    "http://a:",
    "a://b:",
    "AKIA",
    "ghp_",
    "github_pat_",
    "xoxa-",
    "sk_live_",
    "glpat-",
    "npm_",
    "-----BEGIN PRIVATE KEY-----",
    "`",
    "(",
    "|",
  ];
  const inputs = [
    ...units.map((u) => u.repeat(Math.ceil(16384 / u.length)).slice(0, 16384)),
    "-----BEGIN RSA PRIVATE KEY-----" + "x".repeat(16384),
    "mysql " + " -".repeat(8190),
    "a://" + "b:".repeat(8190),
  ];
  const slowest = { ms: 0, rule: "", input: "" };
  const started = performance.now();
  for (const rule of DEFAULT_REDACT_RULES) {
    for (const input of inputs) {
      const t = performance.now();
      input.replace(rule.pattern, rule.replacement);
      const ms = performance.now() - t;
      if (ms > slowest.ms) {
        Object.assign(slowest, { ms, rule: rule.name, input: input.slice(0, 30) });
      }
    }
  }
  const total = performance.now() - started;
  // Measured here: the slowest pair (curl_user on "curl -u a " repeated) 26-66 ms, all 1,000
  // pairs about 0.5 s. An exponential pattern would take seconds to forever.
  assert.ok(
    slowest.ms < 500,
    `${slowest.rule} on ${JSON.stringify(slowest.input)}...: ${slowest.ms} ms`,
  );
  assert.ok(total < 5000, `${total.toFixed(0)} ms in all`);
});
