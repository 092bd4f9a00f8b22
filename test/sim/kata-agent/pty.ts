// Terminal processes. runc's foreground mode (no --console-socket) creates the container's pty
// itself and copies it to its own stdio, but it needs a terminal as its stdin (/dev/tty). Node
// cannot open ptys, so a small python3 helper gives runc one: it owns the pty pair, copies
// stdin → pty and pty → stdout, applies "rows cols" lines from fd 3 as window sizes (the kernel
// then SIGWINCHes runc, which resizes the container's console), and exits with runc's status.

export const python = '/usr/bin/python3';

export const ptyHelper = String.raw`
import os, sys, pty, fcntl, termios, struct, select, signal
rows, cols = int(sys.argv[1]), int(sys.argv[2])
cmd = sys.argv[3:]
master, slave = pty.openpty()
def winsize(r, c):
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack('HHHH', r, c, 0, 0))
if rows and cols: winsize(rows, cols)
pid = os.fork()
if pid == 0:
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2): os.dup2(slave, fd)
    os.close(master); os.close(slave)
    os.closerange(3, 256)
    os.execvp(cmd[0], cmd)
os.close(slave)
ctl = 3
fds = [master, 0, ctl]
ctlbuf = b''
status = None
while True:
    if status is None:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p: status = st
    try:
        r, _, _ = select.select(fds, [], [], 0.05)
    except InterruptedError:
        continue
    if master in r:
        try:
            data = os.read(master, 65536)
        except OSError:
            data = b''
        if not data:
            break
        os.write(1, data)
    elif status is not None and not r:
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
            winsize(int(r_), int(c_))
if status is None:
    _, status = os.waitpid(pid, 0)
sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
`;
