//go:build purego

package search

// puregoBuild: this test binary was built with -tags purego, so every
// kernel family runs its portable Go implementation.
const puregoBuild = true
