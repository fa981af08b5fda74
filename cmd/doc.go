// Package cmd is rq's command line: thin cobra commands that parse flags
// into an options struct and call the workflow packages, hand results to
// report, and map errors to exit codes (exit.go, the one place they live).
//
// Each command follows one pattern: newXCmd(runF) builds the cobra command,
// whose RunE only fills an xOptions and calls runF (runX by default), so
// tests can check flag parsing apart from behaviour.
package cmd
