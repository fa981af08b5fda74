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
