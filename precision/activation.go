package precision

import "fmt"

// Activation is how an integer FC layer quantizes its input: with a
// scale and zero point fixed by calibration (Static) or computed from
// each batch as it runs (Dynamic). The zero value is not set (a plan that
// leaves it out gets Dynamic when validated).
type Activation uint8

const (
	Static Activation = iota + 1
	Dynamic
)

var activationNames = [...]string{Static: "static", Dynamic: "dynamic"}

// Valid reports whether a is Static or Dynamic.
func (a Activation) Valid() bool { return a > 0 && int(a) < len(activationNames) }

// String is "static" or "dynamic", as plans write it.
func (a Activation) String() string {
	if !a.Valid() {
		return fmt.Sprintf("Activation(%d)", uint8(a))
	}
	return activationNames[a]
}

// ActivationError is a plan's activation that is neither "static" nor
// "dynamic".
type ActivationError struct {
	Name string
}

func (e *ActivationError) Error() string {
	return fmt.Sprintf("activation must be %q or %q, not %q", Static, Dynamic, e.Name)
}

// ParseActivation maps "static" or "dynamic" to its Activation, or
// returns an *ActivationError.
func ParseActivation(s string) (Activation, error) {
	for a := Static; a.Valid(); a++ {
		if activationNames[a] == s {
			return a, nil
		}
	}
	return 0, &ActivationError{Name: s}
}

// MarshalText writes a's name; an unset or invalid a is an error (plans
// omit an unset activation: the field is omitempty).
func (a Activation) MarshalText() ([]byte, error) {
	if !a.Valid() {
		return nil, fmt.Errorf("precision: no activation (%d) to write", uint8(a))
	}
	return []byte(activationNames[a]), nil
}

// UnmarshalText parses a name with ParseActivation.
func (a *Activation) UnmarshalText(b []byte) error {
	v, err := ParseActivation(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// FCLabel names an FC layer's arithmetic as search ladders, kernels and
// reports do: the precision, with the activation mode of an integer or MX
// one when it is set ("int8-static", "int8-dynamic", "mxfp4-dynamic": MX
// activations quantized from each batch; "fp16", "mxfp4": weights only).
func FCLabel(p Precision, a Activation) string {
	if (p.IsInteger() || p.IsMX()) && a.Valid() {
		return p.String() + "-" + a.String()
	}
	return p.String()
}
