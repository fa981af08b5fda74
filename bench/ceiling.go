package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
)

// OneDNN runs the peer binary built from ../shared/bench/onednn_gemm.c
// ("onednn_gemm M N K" prints "int8 X GOPS fp32 Y GFLOPS") for each shape
// and thread count on first use, and returns the figure matching a kernel:
// oneDNN u8s8s32 for int8 GEMMs, sgemm for the float ones.
func OneDNN(ctx context.Context, binary string) func(kernel string, s Shape, threads int) (float64, string, bool) {
	type key struct{ m, n, k, t int }
	type fig struct{ i8, f32 float64 }
	var mu sync.Mutex
	cache := map[key]fig{}
	re := regexp.MustCompile(`int8 ([0-9.]+) GOPS fp32 ([0-9.]+) GFLOPS`)
	return func(kernel string, s Shape, threads int) (float64, string, bool) {
		mu.Lock()
		defer mu.Unlock()
		k := key{s.M, s.N, s.K, threads}
		f, ok := cache[k]
		if !ok {
			cmd := exec.CommandContext(ctx, binary, strconv.Itoa(s.M), strconv.Itoa(s.N), strconv.Itoa(s.K))
			cmd.Env = append(os.Environ(), fmt.Sprintf("OMP_NUM_THREADS=%d", threads))
			out, err := cmd.Output()
			m := re.FindSubmatch(out)
			if err != nil || m == nil {
				cache[k] = fig{}
				return 0, "", false
			}
			f.i8, _ = strconv.ParseFloat(string(m[1]), 64)
			f.f32, _ = strconv.ParseFloat(string(m[2]), 64)
			cache[k] = f
		}
		switch kernel {
		case "gemm-int8", "gemm-int8-dynamic":
			return f.i8, "oneDNN u8s8s32", f.i8 > 0
		case "gemm-fp32", "gemm-fp16", "gemm-bf16":
			return f.f32, "oneDNN sgemm", f.f32 > 0
		}
		return 0, "", false
	}
}
