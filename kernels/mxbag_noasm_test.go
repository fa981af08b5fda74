//go:build !amd64 || purego

package kernels

// Without assembly there is no prefetch to set: one run.
var mxPrefetchLines = []int{0}

func setPrefetchLines(int) int { return 0 }
