/*
 * kubicle-guest-agent: the host's hands inside a microvm guest (ADR 0009). /init execs it as PID 1
 * once devices and the network are up. It knows nothing of containers: the host asks it to spawn
 * processes (in a chroot, as a user, with or without a terminal), to carry their input and output,
 * to signal them and to open TCP connections inside the guest; container set-up is processes too.
 *
 * Protocol, over the virtio-serial port: frames of a 9-byte header (u32 big-endian payload length,
 * u32 big-endian stream id, u8 type) and a payload. Stream ids are the host's choice.
 *   host -> guest: HELLO, SPAWN (NUL-separated key=value), STDIN, STDIN_EOF, RESIZE ("rows cols"),
 *                  SIGNAL ("n": to the process; SIGKILL to its whole process group), CONNECT ("port"),
 *                  SEED ("sec nsec\n" then random bytes: sets the clock and reseeds the kernel's
 *                  random generator, which a guest restored from a saved template shares with its
 *                  siblings until then), LIST (the streams the agent has: for a host that reconnects),
 *                  RESUME ("out err": send a kept stream's output again from these byte offsets),
 *                  RELEASE (forget a kept stream that has ended)
 *   SPAWN with cgroup=DIR runs the process in that cgroup (v2) directory.
 *   SPAWN with keep=1 keeps the stream's recent output (RING bytes of each of stdout and stderr)
 *   and the stream itself past its EXIT until RELEASE: a host that dies loses what was on its way
 *   to it (QEMU's buffer, the socket's, its own), and the next one asks for it again by RESUME.
 *   SPAWN with init=1 marks a container's main process: like PID 1 of a container's own PID
 *   namespace, it gets signals other than KILL and STOP only when it handles them.
 *   guest -> host: READY (answer to HELLO), STARTED ("pid"), STDOUT, STDERR,
 *                  ERROR (why a spawn or connect failed), EXIT ("code", 128+n for signal n; last frame),
 *                  LISTED (answer to LIST: a line "id pid exited code" per stream),
 *                  RESUMED ("out err": answer to RESUME, the offsets the output sent next starts
 *                  at, beyond those asked for if the ring no longer has them; then that output and,
 *                  for an ended stream, its EXIT again)
 * While no host is connected, writes to the port block: processes' output waits in their pipes and
 * nothing is lost but what QEMU held for the host that went. QEMU drops that by whole writes, so
 * every frame is written whole, in one write of at most 32 KiB (the port's largest), and a new
 * host never starts mid-frame.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/random.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

enum {
  T_HELLO = 1, T_SPAWN = 2, T_STDIN = 3, T_STDIN_EOF = 4, T_RESIZE = 5, T_SIGNAL = 6, T_CONNECT = 7, T_SEED = 8, T_LIST = 9, T_RESUME = 10, T_RELEASE = 11,
  T_READY = 16, T_STARTED = 17, T_STDOUT = 18, T_STDERR = 19, T_ERROR = 20, T_EXIT = 21, T_LISTED = 22, T_RESUMED = 23,
};

#define MAX_STREAMS 256
#define MAX_FRAME (1 << 20)
/* The most the guest's virtio console takes in one write; a frame out is never larger. */
#define MAX_OUT (32 * 1024)
#define MAX_OUT_DATA (MAX_OUT - 9)
/* Output a kept stream holds for a host that reconnects: more than QEMU's and a socket's buffers. */
#define RING (512 * 1024)
/* Ended kept streams held for a host to record; beyond this the oldest is forgotten. */
#define MAX_ENDED 16

struct stream {
  int used;
  uint32_t id;
  pid_t pid;      /* 0 for a connection */
  int in;         /* where STDIN goes: pipe, pty master or socket; -1 once closed */
  int out, err;   /* what is read into STDOUT and STDERR; -1 once at end */
  int tty;
  int init;       /* a container's main process: PID 1 signal rules */
  int exited, code;
  int keep;       /* output kept in `ring` and the stream kept past EXIT, until RELEASE */
  int ended;      /* EXIT sent; only a kept stream stays after it */
  uint64_t sent[2];        /* bytes of stdout and stderr sent so far */
  unsigned char *ring[2];  /* the last RING bytes of each, at offset % RING; allocated on first use */
};

static struct stream streams[MAX_STREAMS];
static int port = -1;

static void put32(unsigned char *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static uint32_t get32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static void write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) { struct pollfd w = {fd, POLLOUT, 0}; poll(&w, 1, 100); continue; }
      return; /* the host went away: output is lost, as with a closed terminal */
    }
    p += n; len -= n;
  }
}

static void send_frame(uint32_t id, int type, const void *data, size_t len) {
  static unsigned char f[MAX_OUT];
  if (len > MAX_OUT_DATA) len = MAX_OUT_DATA;
  put32(f, len); put32(f + 4, id); f[8] = type;
  memcpy(f + 9, data, len);
  write_all(port, f, 9 + len);
}

static void send_text(uint32_t id, int type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void send_text(uint32_t id, int type, const char *fmt, ...) {
  char buf[512];
  va_list ap; va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  send_frame(id, type, buf, n < 0 ? 0 : (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1));
}

/* Sends a stream's output (which 0 stdout, 1 stderr), keeping it first if the stream is kept. */
static void send_output(struct stream *s, int which, const unsigned char *data, size_t len) {
  if (s->keep && (s->ring[which] || (s->ring[which] = malloc(RING)))) {
    for (size_t done = 0; done < len;) {
      size_t at = (s->sent[which] + done) % RING, n = len - done;
      if (n > RING - at) n = RING - at;
      memcpy(s->ring[which] + at, data + done, n);
      done += n;
    }
  }
  s->sent[which] += len;
  send_frame(s->id, which ? T_STDERR : T_STDOUT, data, len);
}

static void forget(struct stream *s) {
  free(s->ring[0]); free(s->ring[1]);
  s->ring[0] = s->ring[1] = NULL;
  s->used = 0;
}

static struct stream *find(uint32_t id) {
  for (int i = 0; i < MAX_STREAMS; i++) if (streams[i].used && streams[i].id == id) return &streams[i];
  return NULL;
}

static struct stream *alloc_stream(uint32_t id) {
  if (find(id)) return NULL;
  /* Ended kept streams beyond MAX_ENDED: the oldest (lowest id, ids grow) is forgotten. */
  for (;;) {
    struct stream *oldest = NULL;
    int ended = 0;
    for (int i = 0; i < MAX_STREAMS; i++)
      if (streams[i].used && streams[i].ended) { ended++; if (!oldest || streams[i].id < oldest->id) oldest = &streams[i]; }
    if (ended < MAX_ENDED) break;
    forget(oldest);
  }
  for (int i = 0; i < MAX_STREAMS; i++)
    if (!streams[i].used) { memset(&streams[i], 0, sizeof streams[i]); streams[i].used = 1; streams[i].id = id; streams[i].in = streams[i].out = streams[i].err = -1; return &streams[i]; }
  return NULL;
}

static void close_fd(int *fd) { if (*fd >= 0) close(*fd); *fd = -1; }

/* Whether a process has a handler for a signal (SigCgt in /proc/PID/status). */
static int catches(pid_t pid, int sig) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return 1;
  int yes = 1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "SigCgt:", 7)) { yes = (strtoull(line + 7, NULL, 16) >> (sig - 1)) & 1; break; }
  fclose(f);
  return yes;
}

/* A stream ends once its process is reaped (or its connection closed) and its output is drained. */
static void maybe_finish(struct stream *s) {
  if (!s->used || s->ended || s->out >= 0 || s->err >= 0) return;
  if (s->pid && !s->exited) return;
  close_fd(&s->in);
  send_text(s->id, T_EXIT, "%d", s->pid ? s->code : 0);
  s->ended = 1;
  if (!s->keep) forget(s);
}

/* RESUME: a kept stream's output again from the host's offsets, as far back as the ring goes. */
static void resume(uint32_t id, const char *payload) {
  struct stream *s = find(id);
  unsigned long long want[2] = {0, 0};
  if (!s) { send_text(id, T_RESUMED, "0 0"); send_text(id, T_EXIT, "255"); return; }
  sscanf(payload, "%llu %llu", &want[0], &want[1]);
  uint64_t from[2];
  for (int w = 0; w < 2; w++) {
    uint64_t oldest = s->ring[w] ? (s->sent[w] > RING ? s->sent[w] - RING : 0) : s->sent[w];
    from[w] = want[w] < oldest ? oldest : want[w] > s->sent[w] ? s->sent[w] : want[w];
  }
  send_text(id, T_RESUMED, "%llu %llu", (unsigned long long)from[0], (unsigned long long)from[1]);
  for (int w = 0; w < 2; w++)
    for (uint64_t off = from[w]; off < s->sent[w];) {
      size_t at = off % RING, n = s->sent[w] - off;
      if (n > RING - at) n = RING - at;
      if (n > MAX_OUT_DATA) n = MAX_OUT_DATA;
      send_frame(id, w ? T_STDERR : T_STDOUT, s->ring[w] + at, n);
      off += n;
    }
  if (s->ended) send_text(id, T_EXIT, "%d", s->pid ? s->code : 0);
}

/* The spawn request: key=value entries separated by NULs. */
struct spawn_req { const char *root, *cwd, *cgroup; uid_t uid; gid_t gid; int tty, stdin_open, rows, cols, init, keep; gid_t groups[64]; int ngroups; char *env[256]; int nenv; char *argv[256]; int nargv; };

static int parse_spawn(char *p, size_t len, struct spawn_req *r) {
  memset(r, 0, sizeof *r);
  r->cwd = "/";
  char *end = p + len;
  while (p < end) {
    char *entry = p;
    p += strnlen(p, end - p) + 1;
    char *eq = strchr(entry, '=');
    if (!eq) return -1;
    *eq = 0;
    char *v = eq + 1;
    if (!strcmp(entry, "root")) r->root = v;
    else if (!strcmp(entry, "cgroup")) r->cgroup = v;
    else if (!strcmp(entry, "cwd")) r->cwd = v;
    else if (!strcmp(entry, "uid")) r->uid = strtoul(v, NULL, 10);
    else if (!strcmp(entry, "gid")) r->gid = strtoul(v, NULL, 10);
    else if (!strcmp(entry, "group") && r->ngroups < 64) r->groups[r->ngroups++] = strtoul(v, NULL, 10);
    else if (!strcmp(entry, "tty")) r->tty = atoi(v);
    else if (!strcmp(entry, "stdin")) r->stdin_open = atoi(v);
    else if (!strcmp(entry, "rows")) r->rows = atoi(v);
    else if (!strcmp(entry, "cols")) r->cols = atoi(v);
    else if (!strcmp(entry, "init")) r->init = atoi(v);
    else if (!strcmp(entry, "keep")) r->keep = atoi(v);
    else if (!strcmp(entry, "env") && r->nenv < 255) r->env[r->nenv++] = v;
    else if (!strcmp(entry, "arg") && r->nargv < 255) r->argv[r->nargv++] = v;
    else return -1;
  }
  return r->nargv ? 0 : -1;
}

/* In the child: enter the root, become the user, exec. Failures go to the parent over `report`. */
static void child(struct spawn_req *r, int report) {
  sigset_t all; sigemptyset(&all); sigprocmask(SIG_SETMASK, &all, NULL);
  const char *step = "cgroup";
  if (r->cgroup) {
    /* Join the container's cgroup before anything runs: its limits and OOM count cover all of it. */
    char path[512];
    snprintf(path, sizeof path, "%s/cgroup.procs", r->cgroup);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) goto fail;
    close(fd);
  }
  step = "chroot";
  if (r->root && (chroot(r->root) < 0 || chdir("/") < 0)) goto fail;
  step = "chdir";
  if (chdir(r->cwd) < 0) goto fail;
  step = "setgroups";
  if (setgroups(r->ngroups, r->groups) < 0) goto fail;
  step = "setgid";
  if (setgid(r->gid) < 0) goto fail;
  step = "setuid";
  if (setuid(r->uid) < 0) goto fail;
  r->env[r->nenv] = NULL; r->argv[r->nargv] = NULL;
  step = "exec";
  execvpe(r->argv[0], r->argv, r->env);
fail:;
  char msg[512];
  int n = snprintf(msg, sizeof msg, "%d %s %s: %s", errno == ENOENT ? 127 : 126, step, !strcmp(step, "exec") ? r->argv[0] : (!strcmp(step, "chdir") ? r->cwd : ""), strerror(errno));
  write_all(report, msg, n);
  _exit(127);
}

static void spawn_stream(uint32_t id, char *payload, size_t len) {
  struct spawn_req r;
  if (parse_spawn(payload, len, &r) < 0) { send_text(id, T_ERROR, "bad spawn request"); send_text(id, T_EXIT, "126"); return; }
  struct stream *s = alloc_stream(id);
  if (!s) { send_text(id, T_ERROR, "stream %u exists or too many streams", id); send_text(id, T_EXIT, "126"); return; }
  int report[2];
  if (pipe2(report, O_CLOEXEC) < 0) goto fail;
  pid_t pid;
  if (r.tty) {
    int master;
    struct winsize ws = {r.rows > 0 ? r.rows : 24, r.cols > 0 ? r.cols : 80, 0, 0};
    pid = forkpty(&master, NULL, NULL, &ws);
    if (pid == 0) { close(report[0]); child(&r, report[1]); }
    if (pid < 0) goto fail;
    s->in = r.stdin_open ? master : -1;
    s->out = master;
    if (!r.stdin_open) { /* output only: input goes nowhere, but the master stays open for reading */ }
    s->tty = 1;
  } else {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) goto fail;
    pid = fork();
    if (pid == 0) {
      close(report[0]);
      setsid();
      dup2(in[0], 0); dup2(out[1], 1); dup2(err[1], 2);
      child(&r, report[1]);
    }
    close(in[0]); close(out[1]); close(err[1]);
    if (pid < 0) { close(in[1]); close(out[0]); close(err[0]); goto fail; }
    s->in = in[1];
    if (!r.stdin_open) close_fd(&s->in);
    s->out = out[0]; s->err = err[0];
  }
  close(report[1]);
  char msg[512];
  ssize_t n = read(report[0], msg, sizeof msg - 1);
  close(report[0]);
  s->pid = pid;
  s->init = r.init;
  s->keep = r.keep;
  if (n > 0) {
    /* The command never started: say why; its exit (127 or 126) follows when it is reaped. */
    msg[n] = 0;
    char *why = strchr(msg, ' ');
    send_text(id, T_ERROR, "%s", why ? why + 1 : msg);
    s->code = atoi(msg);
  } else {
    send_text(id, T_STARTED, "%d", pid);
  }
  if (s->in >= 0) fcntl(s->in, F_SETFL, fcntl(s->in, F_GETFL) | O_NONBLOCK);
  return;
fail:
  send_text(id, T_ERROR, "spawn: %s", strerror(errno));
  send_text(id, T_EXIT, "126");
  s->used = 0;
}

static void connect_stream(uint32_t id, const char *payload) {
  struct stream *s = alloc_stream(id);
  if (!s) { send_text(id, T_ERROR, "stream %u exists", id); send_text(id, T_EXIT, "1"); return; }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(payload)), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    send_text(id, T_ERROR, "connect to port %s: %s", payload, strerror(errno));
    send_text(id, T_EXIT, "1");
    if (fd >= 0) close(fd);
    s->used = 0;
    return;
  }
  s->in = fd; s->out = dup(fd);
  send_text(id, T_STARTED, "0");
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (int i = 0; i < MAX_STREAMS; i++) {
      struct stream *s = &streams[i];
      if (!s->used || s->ended || s->exited || s->pid != pid) continue;
      s->exited = 1;
      if (!s->code) s->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      /* A terminal's master reads EIO once every holder of the slave is gone; a daemonised
         grandchild may keep it, so after the process exits read what is there and stop. */
      if (s->tty) {
        char buf[MAX_OUT_DATA];
        fcntl(s->out, F_SETFL, fcntl(s->out, F_GETFL) | O_NONBLOCK);
        ssize_t n;
        while ((n = read(s->out, buf, sizeof buf)) > 0) send_output(s, 0, (unsigned char *)buf, n);
        if (s->in == s->out) s->in = -1;
        close_fd(&s->out);
      }
      maybe_finish(s);
    }
  }
}

/* What a reconnecting host needs to take over the streams an earlier host started. */
static void list_streams(void) {
  static char out[MAX_OUT_DATA];
  size_t n = 0;
  for (int i = 0; i < MAX_STREAMS && n + 64 < sizeof out; i++) {
    struct stream *s = &streams[i];
    if (s->used) n += snprintf(out + n, sizeof out - n, "%u %d %d %d\n", s->id, (int)s->pid, s->exited, s->code);
  }
  send_frame(0, T_LISTED, out, n);
}

/* The host's clock and entropy for a fresh sandbox (see SEED above). */
static void seed(const char *p, size_t len) {
  const char *nl = memchr(p, '\n', len);
  if (!nl) return;
  struct timespec ts = {0};
  if (sscanf(p, "%ld %ld", &ts.tv_sec, &ts.tv_nsec) == 2) clock_settime(CLOCK_REALTIME, &ts);
  struct { int entropy_count; int buf_size; unsigned char buf[256]; } pool;
  size_t n = len - (size_t)(nl + 1 - p);
  if (n > sizeof pool.buf) n = sizeof pool.buf;
  pool.entropy_count = (int)n * 8;
  pool.buf_size = (int)n;
  memcpy(pool.buf, nl + 1, n);
  int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
  if (fd < 0) return;
  /* Credited entropy, then a reseed now rather than at the generator's next scheduled one. */
  if (ioctl(fd, RNDADDENTROPY, &pool) < 0 || ioctl(fd, RNDRESEEDCRNG) < 0) perror("kubicle-guest-agent: seed");
  close(fd);
}

static void handle_frame(uint32_t id, int type, char *payload, size_t len) {
  struct stream *s = find(id);
  switch (type) {
  case T_HELLO: send_frame(0, T_READY, "kubicle-guest-agent 2", 21); break;
  case T_SPAWN: spawn_stream(id, payload, len); break;
  case T_CONNECT: payload[len] = 0; connect_stream(id, payload); break;
  case T_SEED: seed(payload, len); break;
  case T_LIST: list_streams(); break;
  case T_RESUME: if (id) resume(id, payload); break;
  case T_RELEASE: if (s && s->ended) forget(s); break;
  case T_STDIN:
    if (s && s->in >= 0) {
      /* Input is written whole; a reader that stops reading holds the agent up, as a pipe would. */
      int fl = fcntl(s->in, F_GETFL); fcntl(s->in, F_SETFL, fl & ~O_NONBLOCK);
      write_all(s->in, payload, len);
      fcntl(s->in, F_SETFL, fl);
    }
    break;
  case T_STDIN_EOF:
    if (s && s->in >= 0) {
      if (s->tty) { char eot = 4; write_all(s->in, &eot, 1); }
      else if (s->pid == 0) shutdown(s->in, SHUT_WR);
      else close_fd(&s->in);
    }
    break;
  case T_RESIZE:
    if (s && s->tty && s->out >= 0) {
      payload[len] = 0;
      struct winsize ws = {0};
      if (sscanf(payload, "%hu %hu", &ws.ws_row, &ws.ws_col) == 2) ioctl(s->out, TIOCSWINSZ, &ws);
    }
    break;
  case T_SIGNAL:
    /* As in a container, a signal is for its main process (a shell's TERM trap runs, its
       children are left alone); only a kill takes everything the process started with it. */
    if (s && s->pid > 0 && !s->exited) {
      payload[len] = 0;
      int sig = atoi(payload);
      if (s->init && sig != SIGKILL && sig != SIGSTOP && !catches(s->pid, sig)) break;
      if (sig != SIGKILL || kill(-s->pid, sig) < 0) kill(s->pid, sig);
    }
    break;
  }
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "/dev/vport0p1";
  port = open(path, O_RDWR | O_CLOEXEC);
  if (port < 0) { perror(path); return 1; }
  sigset_t mask; sigemptyset(&mask); sigaddset(&mask, SIGCHLD); sigaddset(&mask, SIGPIPE);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  static unsigned char buf[MAX_FRAME + 10];
  size_t have = 0;
  int host_gone = 0;
  for (;;) {
    struct pollfd fds[2 + 2 * MAX_STREAMS];
    struct stream *owner[2 + 2 * MAX_STREAMS];
    int nfds = 0;
    fds[nfds++] = (struct pollfd){sfd, POLLIN, 0};
    fds[nfds++] = (struct pollfd){host_gone ? -1 : port, POLLIN, 0};
    for (int i = 0; i < MAX_STREAMS; i++) {
      struct stream *s = &streams[i];
      if (!s->used) continue;
      if (s->out >= 0) { owner[nfds] = s; fds[nfds++] = (struct pollfd){s->out, POLLIN, 0}; }
      if (s->err >= 0) { owner[nfds] = s; fds[nfds++] = (struct pollfd){s->err, POLLIN, 0}; }
    }
    /* While no host is connected the port reads end-of-file at once: look again a little later. */
    if (poll(fds, nfds, host_gone ? 200 : -1) < 0 && errno != EINTR) return 1;
    host_gone = 0;
    if (fds[0].revents) { struct signalfd_siginfo si; while (read(sfd, &si, sizeof si) > 0) {} reap(); }
    if (fds[1].revents & POLLIN) {
      ssize_t n = read(port, buf + have, sizeof buf - 1 - have);
      if (n <= 0) { host_gone = 1; have = 0; }
      else {
        have += n;
        while (have >= 9) {
          uint32_t len = get32(buf);
          if (len > MAX_FRAME) { have = 0; break; } /* out of step: drop what is buffered */
          if (have < 9 + len) break;
          char save = buf[9 + len];
          buf[9 + len] = 0;
          handle_frame(get32(buf + 4), buf[8], (char *)buf + 9, len);
          buf[9 + len] = save;
          memmove(buf, buf + 9 + len, have - 9 - len);
          have -= 9 + len;
        }
      }
    } else if (fds[1].revents & (POLLHUP | POLLERR)) { host_gone = 1; have = 0; }
    for (int i = 2; i < nfds; i++) {
      if (!fds[i].revents) continue;
      struct stream *s = owner[i];
      if (!s->used) continue;
      int *fd = fds[i].fd == s->out ? &s->out : &s->err;
      if (*fd != fds[i].fd) continue;
      char data[MAX_OUT_DATA];
      ssize_t n = read(*fd, data, sizeof data);
      if (n > 0) send_output(s, fd == &s->out ? 0 : 1, (unsigned char *)data, n);
      else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        if (s->in == *fd) s->in = -1;
        close_fd(fd);
        maybe_finish(s);
      }
    }
  }
}
