/**
 * Many idle TCP connections on loopback, held open by python3 processes (both ends: 2 sockets
 * and 2 file descriptors a connection). Root here has no CAP_SYS_RESOURCE, so RLIMIT_NOFILE
 * cannot pass its hard limit (20,000 on this machine): each process raises its soft limit to the
 * hard one in a bash wrapper and holds what fits, and as many processes as needed share the
 * work. Clients bind to 127.0.0.2, .3, ... with IP_BIND_ADDRESS_NO_PORT so that many
 * connections to one listener never run out of ephemeral ports.
 */
import { Child, output } from "./child.ts";

const HOLDER = `
import select, socket, sys
n = int(sys.argv[1])
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(4096)
listener.setblocking(False)
port = listener.getsockname()[1]
clients, servers = [], []
def accept_pending():
    while True:
        try:
            servers.append(listener.accept()[0])
        except BlockingIOError:
            return
IP_BIND_ADDRESS_NO_PORT = 24
for i in range(n):
    c = socket.socket()
    c.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    c.bind(("127.0.0.%d" % (2 + i // 20000), 0))
    c.connect(("127.0.0.1", port))
    clients.append(c)
    if i % 1000 == 999:
        accept_pending()  # before the accept queue (4096) is full: a full one drops SYNs
while len(servers) < n:
    select.select([listener], [], [], 1)
    accept_pending()
print("ready", len(clients), flush=True)
sys.stdin.read()  # hold them until the benchmark closes stdin
`;

/** Opens `n` connections and holds them until `close()`d or disposed. */
export async function holdIdleConnections(
  n: number,
): Promise<{ close(): Promise<void> } & AsyncDisposable> {
  const hardLimit = Number((await output("bash", ["-c", "ulimit -Hn"])).trim());
  const perProcess = Math.floor((hardLimit - 100) / 2);
  const holders: Child[] = [];
  const close = async () => {
    await Promise.all(holders.map((h) => h.closeStdin()));
    await Promise.all(holders.map((h) => h.stop("SIGKILL")));
  };
  try {
    for (let left = n; left > 0; left -= perProcess) {
      const count = Math.min(left, perProcess);
      const holder = new Child("bash", [
        "-c",
        `ulimit -n $(ulimit -Hn) && exec python3 -c "$0" "$@"`,
        HOLDER,
        String(count),
      ], { stdin: "piped" });
      holders.push(holder);
      await holder.waitFor(`${count} idle connections`, () => holder.stdout.includes("ready"));
    }
  } catch (e) {
    await close();
    throw e;
  }
  return { close, [Symbol.asyncDispose]: close };
}
