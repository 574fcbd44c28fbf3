import assert from "node:assert/strict";
import { inClusterOptions, kubernetesPermissions } from "./kubernetes_api.ts";

Deno.test("inClusterOptions reads the service environment and the service account paths", () => {
  const env = (vars: { [k: string]: string }) => (name: string) => vars[name];
  assert.deepEqual(
    inClusterOptions(env({
      KUBERNETES_SERVICE_HOST: "10.96.0.1",
      KUBERNETES_SERVICE_PORT: "443",
      NODE_NAME: "node-a",
    })),
    {
      apiServer: "https://10.96.0.1:443",
      tokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
      caFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
      nodeName: "node-a",
    },
  );
  assert.equal(
    inClusterOptions(
      env({ KUBERNETES_SERVICE_HOST: "fd00:10:96::1", KUBERNETES_SERVICE_PORT: "443" }),
    )
      ?.apiServer,
    "https://[fd00:10:96::1]:443",
  );
  assert.equal(
    inClusterOptions(env({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }))
      ?.nodeName,
    undefined,
  );
  assert.equal(inClusterOptions(env({})), undefined, "outside a cluster");
  assert.equal(inClusterOptions(env({ KUBERNETES_SERVICE_HOST: "10.96.0.1" })), undefined);
});

Deno.test("kubernetesPermissions names the API host:port, the token and CA files and the env vars", () => {
  const options = inClusterOptions((n) =>
    ({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "6443" })[n]
  )!;
  assert.deepEqual(kubernetesPermissions(options), {
    net: ["10.96.0.1:6443"],
    reads: [
      "/var/run/secrets/kubernetes.io/serviceaccount/token",
      "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    ],
    env: ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "NODE_NAME"],
  });
  assert.deepEqual(kubernetesPermissions({ apiServer: "https://[fd00::1]" }).net, [
    "[fd00::1]:443",
  ]);
});
