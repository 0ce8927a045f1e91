/* Where does the OS run a 2-thread OpenMP team while another process keeps one of two cores
   busy? (issue 13: "a loaded machine"; benchmarks/README.md, "The loaded machine: where the
   scheduler puts the threads".)

   Each call splits a fixed amount of arithmetic over two threads (thread 0 takes the fraction
   W0 of the array, thread 1 the rest), times each thread's part, and reports which CPU each
   thread ended on. With PIN=1 thread 1 asks to run on the other CPU than thread 0 for its part
   (sched_setaffinity) and restores its mask afterwards.

     gcc -O2 -fopenmp benchmarks/loaded_placement.c -o /tmp/placement
     taskset -c 1 python -c "while True: pass" &      # the busy process
     OMP_WAIT_POLICY=passive /tmp/placement 1000000 100 0.5
     PIN=1 OMP_WAIT_POLICY=passive /tmp/placement 1000000 100 0.67
     kill %1

   Arguments: elements, calls, W0. Prints the serial time, the first 10 calls (wall, each
   thread's run and CPU), the mean call time and how often each thread's CPU was 0 or 1. */
#define _GNU_SOURCE
#include <omp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static float work(const float* x, long n) {   /* compute-bound: 4 passes over a cached run */
    float s = 0;
    for (int r = 0; r < 4; r++)
        for (long i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

int main(int argc, char** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s elements calls w0\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]);
    int calls = atoi(argv[2]);
    double w0 = atof(argv[3]);
    int pin = getenv("PIN") != NULL;
    float* x = malloc(n * sizeof(float));
    for (long i = 0; i < n; i++) x[i] = (float)i * 1e-6f;
    volatile float sink = 0;
    int64_t t0 = now_ns();
    for (int i = 0; i < 20; i++) sink += work(x, n);
    double serial = (now_ns() - t0) / 20e6;
    printf("serial %.3f ms\n", serial);

    double total = 0;
    int on_cpu[2][2] = {{0, 0}, {0, 0}};
    for (int c = 0; c < calls; c++) {
        int64_t run[2][2];
        int cpu[2];
        static int main_cpu;
        int64_t start = now_ns();
        #pragma omp parallel num_threads(2)
        {
            int t = omp_get_thread_num();
            long split = (long)(n * w0), b = t == 0 ? 0 : split, e = t == 0 ? split : n;
            cpu_set_t old, want;
            if (t == 0) main_cpu = sched_getcpu();
            #pragma omp barrier
            if (pin && t == 1) {
                sched_getaffinity(0, sizeof old, &old);
                CPU_ZERO(&want);
                CPU_SET(1 - main_cpu, &want);
                sched_setaffinity(0, sizeof want, &want);
            }
            run[t][0] = now_ns();
            float s = work(x + b, e - b);
            run[t][1] = now_ns();
            cpu[t] = sched_getcpu();
            if (pin && t == 1) sched_setaffinity(0, sizeof old, &old);
            sink += s;
        }
        double wall = (now_ns() - start) / 1e6;
        total += wall;
        for (int t = 0; t < 2; t++) on_cpu[t][cpu[t] & 1]++;
        if (c < 10)
            printf("%6.2f ms  t0 %6.2f ms on cpu%d  t1 %6.2f ms on cpu%d\n", wall,
                   (run[0][1] - run[0][0]) / 1e6, cpu[0], (run[1][1] - run[1][0]) / 1e6, cpu[1]);
    }
    printf("mean %.3f ms (%.2fx serial); t0 on cpu0/cpu1 %d/%d, t1 %d/%d\n", total / calls,
           total / calls / serial, on_cpu[0][0], on_cpu[0][1], on_cpu[1][0], on_cpu[1][1]);
    free(x);
    return 0;
}
