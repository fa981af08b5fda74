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

// TestTableMemory: the bags hold the fp32 table once and every selected
// copy of it at the same time, at the widest need over their shapes.
func TestTableMemory(t *testing.T) {
	const tb = 512 * 1000 // 1000 rows at width 128, 2000 at width 64
	cases := []struct {
		names []string
		want  int64
	}{
		{[]string{"gemm-fp32"}, 0},
		{[]string{"bag-fp32"}, tb},
		// int8 rows are 128+8 bytes at width 128 (136,000) and 64+8 at 64 (144,000)
		{[]string{"bag-int8"}, tb + 144000},
		// mxfp4 rows: 64+4 and 32+2 bytes; mxint8 rows: 128+4 and 64+2
		{[]string{"bag-fp32", "bag-int8", "bag-mxfp4", "gemm-fp32"}, tb + 144000 + 68000},
		{[]string{"bag-mxint8", "bag-mxfp4"}, tb + 132000 + 68000},
	}
	for _, c := range cases {
		if got := TableMemory(c.names, tb); got != c.want {
			t.Errorf("%v: %d bytes, want %d", c.names, got, c.want)
		}
	}
	if all, sum := TableMemory(nil, tb), TableMemory([]string{"bag-fp32", "bag-fp16", "bag-int8", "bag-int4", "bag-int2"}, tb); all <= sum {
		t.Errorf("every kernel: %d bytes, no more than the row-wise bags alone (%d)", all, sum)
	}
}
