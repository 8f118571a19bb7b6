/* Paced UDP sender / counting receiver for bench/queue-bench.sh (runs inside a netns).
 *   queue-udp send DST_PORT COUNT SIZE RATE_PPS     -> prints {"sent":N,"seconds":S}
 *   queue-udp recv PORT IDLE_MS MAX_SECONDS         -> prints {"received":N,"bad":B,"rewritten":R}
 * The sender sleeps until the next datagram is due, then sends all that are due (bursts ~ timer slack). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  if (!strcmp(argv[1], "send") && argc >= 6) {
    a.sin_port = htons(atoi(argv[2]));
    long count = atol(argv[3]), size = atol(argv[4]), rate = atol(argv[5]);
    int sb = 8 << 20; setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sb, sizeof sb);
    char *buf = malloc(size);
    memset(buf, 'a', size);
    memcpy(buf, "SIP/2.0 200 OK\r\n", 16);
    double t0 = now(), per = 1.0 / rate;
    long sent = 0;
    while (sent < count) {
      double due = t0 + sent * per;
      double wait = due - now();
      if (wait > 0) { struct timespec ts = { 0, (long)(wait * 1e9) }; nanosleep(&ts, NULL); }
      /* send everything that is due (catch up after a stall, bounded by count) */
      long upto = (long)((now() - t0) / per) + 1;
      if (upto > count) upto = count;
      for (; sent < upto; sent++) {
        snprintf(buf + 16, 16, "%010ld", sent);
        if (sendto(fd, buf, size, 0, (struct sockaddr *)&a, sizeof a) < 0) { if (errno == ENOBUFS || errno == EAGAIN) { sent--; continue; } perror("sendto"); return 1; }
      }
      if (now() - t0 > 120) break;
    }
    printf("{\"sent\":%ld,\"seconds\":%.4f}\n", sent, now() - t0);
    return 0;
  }
  if (!strcmp(argv[1], "recv") && argc >= 5) {
    a.sin_port = htons(atoi(argv[2]));
    int idle = atoi(argv[3]);
    double maxs = atof(argv[4]);
    int rb = 64 << 20; setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rb, sizeof rb);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
    printf("{\"listening\":true}\n"); fflush(stdout);
    char buf[70000];
    long n = 0, rw = 0;
    double t0 = now(), first = 0, last = 0;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    while (now() - t0 < maxs) {
      int r = poll(&p, 1, n ? idle : 1000);
      if (r == 0) { if (n) break; else continue; }
      ssize_t k;
      while ((k = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
        if (!n) first = now();
        n++;
        last = now();
        if (k > 3 && !memcmp(buf, "RW:", 3)) rw++;
      }
    }
    printf("{\"received\":%ld,\"rewritten\":%ld,\"seconds\":%.4f}\n", n, rw, last - first);
    return 0;
  }
  return 2;
}
