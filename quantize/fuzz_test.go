package quantize

import (
	"strings"
	"testing"
)

// FuzzDecodePlan checks that any bytes either fail to decode or validate,
// or give a plan whose encoding decodes and validates to the same bytes.
func FuzzDecodePlan(f *testing.F) {
	net := testNet()
	for _, name := range PresetNames() {
		p, _ := Preset(name, net)
		f.Add(p.Encode())
	}
	f.Add([]byte(`{"version":1,"layers":{"bot_l.0":{"precision":"int8","activation":"static"}}}`))
	f.Add([]byte(`{"version":1,"layers":{"emb_l.0":{"precision":"int4","greedy":true}}}`))
	f.Add([]byte(`{"version":1}`))
	// Hostile near misses (each refused).
	f.Add([]byte(`{"version":1,"layers":{"top_l.0":{"precision":"int8","precision":"fp32"}}}`))
	f.Add([]byte(`{"version":1,"layers":{"top_l.0":{"Precision":"int8"}}}`))
	f.Add([]byte(`{"version":1,"layers":{}} {}`))
	f.Add([]byte(`{"version":2,"layers":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePlan(strings.NewReader(string(data)))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "plan: ") {
				t.Fatalf("error does not name the document: %v", err)
			}
			return
		}
		if p.Validate(net) != nil {
			return
		}
		enc := p.Encode()
		q, err := DecodePlan(strings.NewReader(string(enc)))
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, enc)
		}
		if err := q.Validate(net); err != nil {
			t.Fatalf("re-validate: %v\n%s", err, enc)
		}
		if string(q.Encode()) != string(enc) {
			t.Fatalf("unstable encoding:\n%s\n%s", enc, q.Encode())
		}
	})
}
