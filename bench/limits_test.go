package bench

import (
	"runtime"
	"strings"
	"testing"
)

func TestCheckShapes(t *testing.T) {
	if err := CheckShapes(DefaultShapes()); err != nil {
		t.Fatalf("the default shapes are refused: %v", err)
	}
	err := CheckShapes([]Shape{{M: 65536, N: 65536, K: 65536}})
	if err == nil || !strings.Contains(err.Error(), "65536,65536,65536") {
		t.Errorf("65536^3: %v", err)
	}
	if runtime.GOOS == "linux" {
		// Memory-bound but cheap in operations: 65536 x 65536 weights.
		err := CheckShapes([]Shape{{M: 1, N: 65536, K: 65536}})
		if _, ok := memAvailable(); ok && (err == nil || !strings.Contains(err.Error(), "GiB available")) {
			t.Errorf("1,65536,65536 (about %d GiB): %v", Shape{M: 1, N: 65536, K: 65536}.MemoryBytes()>>30, err)
		}
	}
}

// TestCheckTable: a bag table beyond the machine's memory is refused when
// a bag kernel is selected (or all are), and ignored for GEMMs alone.
func TestCheckTable(t *testing.T) {
	avail, ok := memAvailable()
	if !ok {
		t.Skip("no /proc/meminfo")
	}
	huge := avail
	for _, names := range [][]string{nil, {"gemm-fp32", "bag-mxfp4"}} {
		if err := CheckTable(names, huge); err == nil || !strings.Contains(err.Error(), "GiB available") {
			t.Errorf("%v: a %d-byte table with %d available: %v", names, huge, avail, err)
		}
		if err := CheckTable(names, 1<<20); err != nil {
			t.Errorf("%v: a 1 MiB table: %v", names, err)
		}
	}
	if err := CheckTable([]string{"gemm-fp32"}, huge); err != nil {
		t.Errorf("GEMMs alone: %v", err)
	}
}
