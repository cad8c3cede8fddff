/*
 * floor: the design's floor for hostinfod -- a minimal fork-per-client
 * server speaking the same exchange (greeting line, prompt, date, quit).
 *
 *   floor -p PORT [-a ADDR] [-b BACKLOG]   TCP on ADDR (default 127.0.0.1)
 *   floor -u PATH [-b BACKLOG]             Unix-domain stream socket
 *   floor -i                               inetd mode: one session on
 *                                          stdin/stdout (for tcpserver, xinetd)
 *
 * The parent accepts and forks; the child writes the greeting and the prompt,
 * answers date/time with ctime-like local time, help, blank lines and unknown
 * words, and quit/exit with "Goodbye." before exiting. SIGCHLD is reaped with
 * a waitpid(WNOHANG) loop. Replies end in CRLF on TCP (and in inetd mode),
 * LF on Unix sockets. Everything that can be computed once (hostname,
 * greeting, time zone) is computed in the parent before accepting.
 *
 * Build: cc -O2 -o floor floor.c
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE 1024
#define PROMPT "Command? "

static char greeting[512];
static size_t greeting_len;

static void on_sigchld(int sig)
{
	int saved = errno;
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Appends s to out at *pos, bounded by cap. */
static void put(char *out, size_t *pos, size_t cap, const char *s)
{
	size_t n = strlen(s);
	if (*pos + n > cap)
		n = cap - *pos;
	memcpy(out + *pos, s, n);
	*pos += n;
}

/* Answers one line; returns 1 when the session should end. */
static int answer(int out, char *line, const char *eol)
{
	char reply[MAX_LINE + 256];
	size_t pos = 0;
	char *w, *end;

	while (*line == ' ' || *line == '\t')
		line++;
	w = line;
	while (*line && *line != ' ' && *line != '\t')
		line++;
	*line = '\0';
	for (end = w; *end; end++)
		*end = (char)tolower((unsigned char)*end);

	if (*w == '\0') {
		/* blank line: just a new prompt */
	} else if (!strcmp(w, "date") || !strcmp(w, "time")) {
		char buf[64];
		struct tm tm;
		time_t now = time(NULL);
		localtime_r(&now, &tm);
		strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", &tm);
		put(reply, &pos, sizeof reply, buf);
		put(reply, &pos, sizeof reply, eol);
	} else if (!strcmp(w, "quit") || !strcmp(w, "exit")) {
		put(reply, &pos, sizeof reply, "Goodbye.");
		put(reply, &pos, sizeof reply, eol);
		write_all(out, reply, pos);
		return 1;
	} else if (!strcmp(w, "help") || !strcmp(w, "?")) {
		put(reply, &pos, sizeof reply, "Commands: quit date who cookie motd help");
		put(reply, &pos, sizeof reply, eol);
	} else {
		put(reply, &pos, sizeof reply, "Unknown command \"");
		put(reply, &pos, sizeof reply, w);
		put(reply, &pos, sizeof reply, "\".");
		put(reply, &pos, sizeof reply, eol);
		put(reply, &pos, sizeof reply, "Commands: quit date who cookie motd help");
		put(reply, &pos, sizeof reply, eol);
	}
	put(reply, &pos, sizeof reply, PROMPT);
	return write_all(out, reply, pos) < 0;
}

/* One session on in/out; never returns. */
static void serve(int in, int out, const char *eol)
{
	char buf[MAX_LINE + 1];
	size_t have = 0;
	char hello[600];
	size_t n = 0;

	put(hello, &n, sizeof hello, greeting);
	put(hello, &n, sizeof hello, eol);
	put(hello, &n, sizeof hello, PROMPT);
	if (write_all(out, hello, n) < 0)
		_exit(0);

	for (;;) {
		ssize_t r = read(in, buf + have, sizeof buf - 1 - have);
		char *start, *nl;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			_exit(0);
		have += (size_t)r;
		start = buf;
		while ((nl = memchr(start, '\n', have - (size_t)(start - buf))) != NULL) {
			char *e = nl;
			while (e > start && (e[-1] == '\r' || e[-1] == '\0' ||
					     e[-1] == ' ' || e[-1] == '\t'))
				e--;
			*e = '\0';
			if (answer(out, start, eol))
				_exit(0);
			start = nl + 1;
		}
		have -= (size_t)(start - buf);
		memmove(buf, start, have);
		if (have >= sizeof buf - 1) {
			char msg[80];
			snprintf(msg, sizeof msg, "Error: line too long (max %d bytes).%s",
				 MAX_LINE, eol);
			write_all(out, msg, strlen(msg));
			_exit(0);
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: floor -p PORT [-a ADDR] [-b BACKLOG] | -u PATH [-b BACKLOG] | -i\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1", *path = NULL;
	int port = 0, backlog = 128, inetd = 0, opt, lfd;
	const char *eol;
	char host[256];
	struct sigaction sa;

	while ((opt = getopt(argc, argv, "p:a:u:b:i")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'a': addr = optarg; break;
		case 'u': path = optarg; break;
		case 'b': backlog = atoi(optarg); break;
		case 'i': inetd = 1; break;
		default: usage();
		}
	}
	if (inetd + (port > 0) + (path != NULL) != 1)
		usage();

	if (gethostname(host, sizeof host) < 0)
		strcpy(host, "localhost");
	host[sizeof host - 1] = '\0';
	greeting_len = (size_t)snprintf(greeting, sizeof greeting,
		"Welcome to hostinfod on %s; type help for command list.", host);
	tzset();
	signal(SIGPIPE, SIG_IGN);

	if (inetd)
		serve(0, 1, "\r\n");

	if (path) {
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		if (strlen(path) >= sizeof sun.sun_path) {
			fprintf(stderr, "floor: path too long\n");
			return 1;
		}
		strcpy(sun.sun_path, path);
		lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		unlink(path);
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof sun) < 0) {
			perror("floor: bind");
			return 1;
		}
		eol = "\n";
	} else {
		struct sockaddr_in sin;
		int one = 1;
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		sin.sin_port = htons((unsigned short)port);
		if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
			fprintf(stderr, "floor: bad address %s\n", addr);
			return 1;
		}
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd < 0 ||
		    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
		    bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0) {
			perror("floor: bind");
			return 1;
		}
		eol = "\r\n";
	}
	if (listen(lfd, backlog) < 0) {
		perror("floor: listen");
		return 1;
	}

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigchld;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pid_t pid;
		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				usleep(10000); /* EMFILE and friends: back off */
			continue;
		}
		pid = fork();
		if (pid == 0) {
			close(lfd);
			serve(fd, fd, eol);
		}
		close(fd);
	}
}
