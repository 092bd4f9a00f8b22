// The guest's init for each process, a container's init or an exec. The real agent is the guest's
// init (a subreaper): it creates the container process at CreateContainer (`runc create`: runc's
// own process exits, the container's init is re-parented to the agent), starts execs the same
// way, and reaps them itself, so it knows an exec's exit as soon as the exec exits, whoever
// still holds its stdout (a background child). Node cannot become a subreaper nor reap a child
// libuv does not know, so each process gets this small python3 helper: it sets
// PR_SET_CHILD_SUBREAPER, runs `runc create` or `runc exec --detach` (both with --pid-file),
// tells the agent "created" on fd 3, reaps everything re-parented to it and exits with the
// process's status (exit code, or 128+signal, decoded like the agent). Non-terminal processes
// inherit the helper's stdio pipes (owned by the agent) straight through runc; for a terminal
// the helper receives the pty master on runc's --console-socket and copies it to its stdio,
// applying "rows cols" lines read on fd 3 as window sizes.

export const python = '/usr/bin/python3';

export const initHelper = String.raw`
import os, sys, socket, select, fcntl, termios, struct, ctypes
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.stderr.write('guest init: prctl(PR_SET_CHILD_SUBREAPER): errno %d\n' % ctypes.get_errno()); sys.exit(125)
terminal = sys.argv[1] == '1'
rows, cols = int(sys.argv[2]), int(sys.argv[3])
pidfile, console = sys.argv[4], sys.argv[5]
cmd = sys.argv[6:]
ctl = 3
lst = None
if terminal:
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(console)
    lst.listen(1)
runc = os.fork()
if runc == 0:
    if lst: lst.close()
    os.close(ctl)
    os.execvp(cmd[0], cmd)
def code(st):
    c = os.waitstatus_to_exitcode(st)
    return c if c >= 0 else 128 - c
def reap(block):
    # Every child: runc itself, then whatever is re-parented to us.
    out = []
    while True:
        try:
            p, st = os.waitpid(-1, 0 if block and not out else os.WNOHANG)
        except ChildProcessError:
            return out
        if p == 0: return out
        out.append((p, st))
# A quick exec can exit (and be re-parented and reaped) before runc itself does: keep every status.
early = {}
while runc not in early:
    for p, st in reap(True): early[p] = st
status = early[runc]
if code(status) != 0:
    if lst: os.unlink(console)
    sys.exit(code(status))
cpid = int(open(pidfile).read().strip())
master = None
if terminal:
    lst.setblocking(False)
    try:
        conn, _ = lst.accept()
        conn.setblocking(True)
        _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        master = fds[0]
        conn.close()
    except (BlockingIOError, IndexError):
        pass
    lst.close(); os.unlink(console)
    if master is None:
        sys.stderr.write('guest init: runc sent no console\n')
    elif rows and cols:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
else:
    # The container holds the agent's pipes itself; ours would delay their EOF.
    null = os.open('/dev/null', os.O_RDWR)
    for fd in (0, 1, 2): os.dup2(null, fd)
    os.close(null)
os.write(ctl, b'created\n')
fds = [ctl] + ([master, 0] if master is not None else [])
ctlbuf = b''
status = early.get(cpid)
while True:
    for p, st in reap(False):
        if p == cpid: status = st
    if status is not None and master is None: break
    try:
        r, _, _ = select.select(fds, [], [], 0.05)
    except InterruptedError:
        continue
    if master is not None and master in r:
        try: data = os.read(master, 65536)
        except OSError: data = b''
        if not data:
            fds.remove(master); master = None
            if 0 in fds: fds.remove(0)
            continue
        os.write(1, data)
    elif master is not None and status is not None and not r:
        break
    if 0 in r:
        data = os.read(0, 65536)
        if data: os.write(master, data)
        else:
            fds.remove(0)
            os.write(master, b'\x04')
    if ctl in r:
        data = os.read(ctl, 4096)
        if not data: fds.remove(ctl)
        ctlbuf += data
        while b'\n' in ctlbuf:
            line, ctlbuf = ctlbuf.split(b'\n', 1)
            r_, c_ = line.split()
            if master is not None: fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack('HHHH', int(r_), int(c_), 0, 0))
sys.exit(code(status))
`;
