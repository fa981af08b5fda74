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

// TableMemory is what the bag kernels among names (empty: all) hold at
// once with a tableBytes fp32 table: the bags take their trials in turn, so
// the fp32 table and every selected kernel's copy of it live together.
// 0 when names select no bag.
func TableMemory(names []string, tableBytes int64) int64 {
	if len(names) == 0 {
		names = Kernels()
	}
	var need int64
	for _, s := range bagShapes {
		rows := max(tableBytes/int64(4*s.N), 1)
		var n int64
		for _, name := range names {
			if k, ok := find(name); ok && k.family == "bag" {
				if n == 0 {
					n = rows * int64(4*s.N) // the fp32 table every copy is made from
				}
				if k.name != "bag-fp32" {
					n += rows * int64(k.rowBytes(s.N))
				}
			}
		}
		need = max(need, n)
	}
	return need
}

// CheckTable refuses a bag table whose set of copies (TableMemory) exceeds
// the memory available here.
func CheckTable(names []string, tableBytes int64) error {
	need := TableMemory(names, tableBytes)
	if avail, ok := memAvailable(); ok && need > avail {
		return fmt.Errorf("a %.2f GiB table and the selected bags' copies of it need %.1f GiB, but this machine has %.1f GiB available",
			float64(tableBytes)/(1<<30), float64(need)/(1<<30), float64(avail)/(1<<30))
	}
	return nil
}
