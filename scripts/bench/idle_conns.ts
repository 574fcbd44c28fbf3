/**
 * Many idle TCP connections on loopback, held open by a python3 process (both ends: 2 sockets
 * and 2 file descriptors a connection). Its RLIMIT_NOFILE is raised in a bash wrapper, and
 * clients bind to 127.0.0.2, .3, ... with IP_BIND_ADDRESS_NO_PORT so that 50k connections to one
 * listener never run out of ephemeral ports.
 */
import { Child } from "./child.ts";

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

/** Opens `n` connections and holds them until disposed. */
export async function holdIdleConnections(n: number): Promise<Child> {
  const holder = new Child("bash", [
    "-c",
    `ulimit -n ${2 * n + 1000} && exec python3 -c "$0" "$@"`,
    HOLDER,
    String(n),
  ], { stdin: "piped" });
  await holder.waitFor(`${n} idle connections`, () => holder.stdout.includes("ready"), 300_000);
  return holder;
}
