package precision

import "testing"

// afterMX is what All lists after the MX formats (TestRoundTrip checks
// the rows before them).
var afterMX = []Precision{Mixed}

// TestMixed: mixed comes last, is a table precision only, with no one
// width, integer or MX machinery, and round-trips by name.
func TestMixed(t *testing.T) {
	all := All()
	if got := all[len(all)-len(afterMX):]; len(got) != 1 || got[0] != Mixed {
		t.Fatalf("All() ends %v, want [mixed]", got)
	}
	p := Mixed
	if !p.Valid() || p.String() != "mixed" || !p.ForTable() || p.ForFC() || p.IsMX() || p.IsInteger() || p.Bits() != 0 || p.TableLabel() != "mixed" || !p.IsMixed() {
		t.Errorf("mixed: %q table %v fc %v mx %v integer %v bits %d label %q", p, p.ForTable(), p.ForFC(), p.IsMX(), p.IsInteger(), p.Bits(), p.TableLabel())
	}
	if q, err := Parse("mixed"); err != nil || q != Mixed {
		t.Errorf("Parse(mixed) = %v, %v", q, err)
	}
	for _, q := range All() {
		if q != Mixed && q.IsMixed() {
			t.Errorf("%v reports mixed", q)
		}
	}
}
