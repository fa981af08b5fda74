package cmd

import (
	"fmt"
	"os"
)

// The files each command reads and writes, checked by pathSet.check before
// any work.

func (o *evalOptions) paths() *pathSet {
	return new(pathSet).input("--model", o.model).input("--baseline", o.baseline).data(&o.data).
		output("--summary-md", o.summaryMD).output("--state-out", o.stateOut)
}

func (o *calibrateOptions) paths() *pathSet {
	return new(pathSet).input("--model", o.model).data(&o.data).output("-o", o.output)
}

func (o *quantizeOptions) paths() *pathSet {
	return new(pathSet).input("--model", o.model).input("--plan", o.plan).input("--ranges", o.ranges).output("-o", o.output)
}

func (o *searchOptions) paths() *pathSet {
	f := new(pathSet).input("--model", o.model).input("--ranges", o.ranges).data(&o.data).
		output("-o", o.output).output("--trace", o.trace)
	// A trace is a journal: --resume T --trace T continues it in place,
	// which is what it is for. Any other output onto --resume is refused.
	if o.resume != "" && !sameExisting(o.resume, o.trace) {
		f.input("--resume", o.resume)
	}
	return f
}

func (o *debugOptions) paths() *pathSet {
	return new(pathSet).input("--model", o.model).input("--quantized", o.quantized).data(&o.data).output("--html", o.html)
}

func (o *inspectOptions) paths() *pathSet { return new(pathSet).input("model", o.model) }

func (o *mergeOptions) paths() *pathSet {
	f := new(pathSet)
	for i, p := range o.files {
		f.input(fmt.Sprintf("state %d", i+1), p)
	}
	return f.output("-o", o.output).output("--summary-md", o.summaryMD)
}

func (o *monitorOptions) paths() *pathSet {
	f := new(pathSet).input("--plan", o.plan).input("--ranges", o.ranges).data(&o.data).inputDir("--snapshots", o.snapshotDir)
	for _, p := range o.snapshots {
		f.input("--snapshot", p)
	}
	for _, p := range o.windowFiles {
		f.input("--window", p)
	}
	return f.output("--history", o.history).output("--plot", o.plot)
}

// sameExisting reports whether a and b both exist and are the same file
// (or name the same object).
func sameExisting(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	if isObject(a) || isObject(b) {
		// An object is rewritten whole, so resuming from the trace being
		// written is safe there too.
		return isObject(a) && isObject(b) && objectID(a) == objectID(b)
	}
	fa, err1 := os.Stat(localName(a))
	fb, err2 := os.Stat(localName(b))
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}
