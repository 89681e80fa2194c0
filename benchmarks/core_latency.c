/* How far apart two CPUs are: the round trip of one cache line between a thread pinned to each,
 * in nanoseconds (the median of 21 batches of 10000 round trips).
 *
 * Our part1 training runs thousands of small ops per step on two threads that hand work and
 * tensors to each other, so its speed follows this latency; a fused kernel (BlockLSTM, PyTorch's
 * nn.LSTM) synchronises its threads a few times per step and barely notices
 * (docs/performance-history.md, "The two cores' distance"). On a VM the host decides where the
 * virtual CPUs run, and the latency can change from one minute to the next.
 *
 *   gcc -O2 -pthread benchmarks/core_latency.c -o core_latency && ./core_latency [CPU_A CPU_B]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { BATCHES = 21, ROUND_TRIPS = 10000 };

/* 1: the ball is with the responder; 0: with the initiator. Alone on its cache line. */
static _Alignas(64) atomic_int ball;

static cpu_set_t only(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return set;
}

static void *respond(void *unused) {
  (void)unused;
  for (long i = 0; i < (long)BATCHES * ROUND_TRIPS; i++) {
    while (atomic_load_explicit(&ball, memory_order_acquire) != 1) {}
    atomic_store_explicit(&ball, 0, memory_order_release);
  }
  return NULL;
}

static double seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec + now.tv_nsec * 1e-9;
}

static int ascending(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* A CPU number from the command line, or -1 if `text` is not one. */
static int cpu_number(const char *text) {
  char *end;
  long cpu = strtol(text, &end, 10);
  return (*text == '\0' || *end != '\0' || cpu < 0 || cpu >= CPU_SETSIZE) ? -1 : (int)cpu;
}

int main(int argc, char **argv) {
  int initiator = argc == 3 ? cpu_number(argv[1]) : 0;
  int responder = argc == 3 ? cpu_number(argv[2]) : 1;
  if ((argc != 1 && argc != 3) || initiator < 0 || responder < 0) {
    fprintf(stderr, "usage: core_latency [CPU_A CPU_B] (two CPU numbers, 0 and 1 by default)\n");
    return 2;
  }
  cpu_set_t initiator_set = only(initiator), responder_set = only(responder);
  pthread_attr_t pinned;
  pthread_t thread;
  pthread_attr_init(&pinned);
  /* The responder starts on its CPU or not at all: pthread_create fails for a CPU not there. */
  if (pthread_setaffinity_np(pthread_self(), sizeof initiator_set, &initiator_set) != 0 ||
      pthread_attr_setaffinity_np(&pinned, sizeof responder_set, &responder_set) != 0 ||
      pthread_create(&thread, &pinned, respond, NULL) != 0) {
    fprintf(stderr, "core_latency: cannot run threads on CPUs %d and %d\n", initiator, responder);
    return 1;
  }
  double nanoseconds[BATCHES];
  for (int batch = 0; batch < BATCHES; batch++) {
    double start = seconds();
    for (int i = 0; i < ROUND_TRIPS; i++) {
      atomic_store_explicit(&ball, 1, memory_order_release);
      while (atomic_load_explicit(&ball, memory_order_acquire) != 0) {}
    }
    nanoseconds[batch] = (seconds() - start) * 1e9 / ROUND_TRIPS;
  }
  pthread_join(thread, NULL);
  qsort(nanoseconds, BATCHES, sizeof nanoseconds[0], ascending);
  printf("%.0f\n", nanoseconds[BATCHES / 2]);
  return 0;
}
