package strictjson

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecode: Decode never panics and every error names the file; what it
// accepts encoding/json accepts too, with the same value, and the value's
// encoding is accepted again; and an accepted document has no key twice in
// any object (checked independently by counting keys).
func FuzzDecode(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"version": 1, "layers": {"a": {"precision": "int8", "precision": "fp32"}}}`))
	f.Add([]byte(`{"version": 1, "layers": {"a": {"Precision": "int8"}}}`))
	f.Add([]byte(`{"version": 1, "bins": [1, NaN]}`))
	f.Add([]byte(`{"version": 1, "pairs": [[1, 2, 3], [4, "5", 6]]}`))
	f.Add([]byte(`{"version": 1}{}`))
	f.Add([]byte(`{"version": 1, "any": [[[[{"a": {"a": 1}}]]]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d testDoc
		err := Decode("f.json", data, &d, opts)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.json: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		var ref testDoc
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatalf("accepted, but encoding/json refuses: %v", err)
		}
		if !reflect.DeepEqual(normalize(d), normalize(ref)) {
			t.Fatalf("decoded %+v, encoding/json %+v", d, ref)
		}
		if dupKeys(t, data) {
			t.Fatalf("accepted a document with a duplicate key: %s", data)
		}
		enc, err := json.Marshal(d)
		if err != nil {
			return // e.g. a float that encoding/json cannot write back
		}
		var again testDoc
		if err := Decode("again.json", enc, &again, opts); err != nil {
			t.Fatalf("re-encoded document refused: %v\n%s", err, enc)
		}
	})
}

// normalize compacts raw JSON, whose bytes encoding/json keeps verbatim.
func normalize(d testDoc) testDoc {
	if d.Raw != nil {
		var v any
		json.Unmarshal(d.Raw, &v)
		d.Raw, _ = json.Marshal(v)
	}
	return d
}

// dupKeys reports whether some object in data has a key twice, by a plain
// recursive token walk (data is known to be valid JSON).
func dupKeys(t *testing.T, data []byte) bool {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	var obj func() bool
	var val func(tok json.Token) bool
	val = func(tok json.Token) bool {
		switch tok {
		case json.Delim('{'):
			return obj()
		case json.Delim('['):
			for dec.More() {
				tk, _ := dec.Token()
				if val(tk) {
					return true
				}
			}
			dec.Token()
		}
		return false
	}
	obj = func() bool {
		seen := map[string]bool{}
		for dec.More() {
			k, _ := dec.Token()
			ks := k.(string)
			if seen[ks] {
				return true
			}
			seen[ks] = true
			v, _ := dec.Token()
			if val(v) {
				return true
			}
		}
		dec.Token()
		return false
	}
	tok, err := dec.Token()
	if err != nil {
		t.Fatal(err)
	}
	return val(tok)
}
