package bench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// maxOpsPerCall bounds one GEMM call of a shape: 2^41 multiply-adds take
// 5-20 s on one core of a current server, so a trial of a larger shape would
// hold rq for minutes and measure nothing a DLRM layer does.
const maxOpsPerCall = 1 << 41

// MemoryBytes is an upper bound on the memory the kernels of the GEMM family
// hold at once for shape s (they are set up together to take their trials in
// turn): per kernel, the fp32 weights, their packed copy, the activations in
// fp32 and int8 and the output.
func (s Shape) MemoryBytes() int64 {
	m, n, k := int64(s.M), int64(s.N), int64(s.K)
	perKernel := 8*n*k + 5*m*k + 4*m*n + 4*n
	gemms := int64(0)
	for _, k := range registry {
		if k.family == "gemm" {
			gemms++
		}
	}
	return gemms * perKernel
}

// CheckShapes refuses shapes that cannot run here: more memory than the
// machine has available (read from /proc/meminfo where there is one), or one
// call too long to measure.
func CheckShapes(shapes []Shape) error {
	avail, haveAvail := memAvailable()
	for _, s := range shapes {
		if ops := 2 * float64(s.M) * float64(s.N) * float64(s.K); ops > maxOpsPerCall {
			return fmt.Errorf("shape %d,%d,%d: one call is %.3g operations, more than the %.3g rq bench measures (minutes per call)", s.M, s.N, s.K, ops, float64(maxOpsPerCall))
		}
		if b := s.MemoryBytes(); haveAvail && b > avail {
			return fmt.Errorf("shape %d,%d,%d needs about %.1f GiB for its kernels, but this machine has %.1f GiB available", s.M, s.N, s.K, float64(b)/(1<<30), float64(avail)/(1<<30))
		}
	}
	return nil
}

// memAvailable is MemAvailable from /proc/meminfo, in bytes.
func memAvailable() (int64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, false
			}
			return kb << 10, true
		}
	}
	return 0, false
}

// CheckTable refuses a bag table that cannot be held here when the
// selection (names; empty: all) has a bag kernel: a bag benchmark holds the
// fp32 table and one quantized copy, at most half its size (fp16).
func CheckTable(names []string, tableBytes int64) error {
	bags := len(names) == 0
	for _, n := range names {
		if k, ok := find(n); ok && k.family == "bag" {
			bags = true
		}
	}
	if !bags {
		return nil
	}
	need := tableBytes + tableBytes/2
	if avail, ok := memAvailable(); ok && need > avail {
		return fmt.Errorf("the bags' %.1f GiB table and its quantized copy need about %.1f GiB, but this machine has %.1f GiB available",
			float64(tableBytes)/(1<<30), float64(need)/(1<<30), float64(avail)/(1<<30))
	}
	return nil
}
