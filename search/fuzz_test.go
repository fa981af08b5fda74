package search

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// FuzzDecodeTrace: decoding never panics; a decoded trace re-encodes to
// a trace that decodes the same; resuming from it never panics.
func FuzzDecodeTrace(f *testing.F) {
	seed, err := os.ReadFile("testdata/trace.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"version":1,"entries":[{"step":"bisect","plan":{"fc0":{"precision":"fp16"}}}]}`))
	f.Add([]byte(`{"version":1,"rows":100,"entries":[{"plan":null}]}`))
	// Hostile near misses (each refused).
	f.Add([]byte(`{"version":1,"entries":[{"step":"bisect","plan":{"fc0":{"precision":"fp16","precision":"int8"}}}]}`))
	f.Add([]byte(`{"version":1,"entries":[{"Step":"bisect","plan":{}}]}`))
	f.Add([]byte(`{"version":1,"entries":[]}{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := DecodeTrace(bytes.NewReader(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "search trace: ") {
				t.Fatalf("error does not name the document: %v", err)
			}
			return
		}
		again, err := DecodeTrace(bytes.NewReader(tr.Encode()))
		if err != nil {
			t.Fatalf("re-encoded trace does not decode: %v", err)
		}
		if !bytes.Equal(again.Encode(), tr.Encode()) {
			t.Fatal("trace encoding is not stable")
		}
		// Resume a small search from it (usually refused: other rows).
		fk := newFake(1, 2, 100, 9)
		uniform(fk, 0.001)
		tr.Rows, tr.Fingerprint, tr.Confidence, tr.Resamples, tr.Seed = 100, "", 0.95, 20, 1
		probe, err := Run(context.Background(), fk, Options{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: noAUC}, Resamples: 20, MaxEvals: 1})
		if err != nil {
			t.Fatal(err)
		}
		tr.Fingerprint = probe.Trace.Fingerprint
		if _, err := Run(context.Background(), fk, Options{Budget: Budget{MaxNEDelta: 0.05, MaxAUCDrop: noAUC}, Resamples: 20, Resume: tr}); err != nil {
			t.Fatalf("resume from a decoded trace: %v", err)
		}
	})
}

// FuzzParseLadders: any --ladder text gives ladders or an error, never a
// panic, and resolved ladders always end at fp32.
func FuzzParseLadders(f *testing.F) {
	for _, s := range []string{"table=int4-greedy,int8;fc=int8-dynamic,bf16;fc0=fp32", "fc=", ";;", "emb0=int2,fp16", "table=fp32,int4"} {
		f.Add(s)
	}
	layers := []Layer{{Name: "fc0", Kind: KindFC, In: 3, Out: 2}, {Name: "emb0", Kind: KindTable, Rows: 5, Dim: 4}}
	f.Fuzz(func(t *testing.T, spec string) {
		l, err := ParseLadders(spec, DefaultLadders(false))
		if err != nil {
			return
		}
		lad, err := l.resolve(layers)
		if err != nil {
			return
		}
		for i, rs := range lad {
			if len(rs) == 0 || rs[len(rs)-1].Name != "fp32" {
				t.Fatalf("layer %d ladder %+v does not end at fp32", i, rs)
			}
		}
	})
}
