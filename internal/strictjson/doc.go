// Package strictjson decodes rq's JSON documents (plans, ranges, search
// traces, evaluation states) strictly, so that a document that says one
// thing to a human reader cannot mean another to rq.
//
// encoding/json alone accepts documents that are ambiguous: a key given
// twice (the last one wins, silently), a field name in the wrong case
// ("Precision" fills Precision), and with DisallowUnknownFields unset, a
// misspelt key that is simply ignored. strictjson walks the document token
// by token first and refuses, with an *Error naming the file, the JSON path
// (layers["top_l.0"].precision) and what was wrong:
//
//   - a document that is not one JSON object (syntax errors with line and
//     column; NaN and Infinity, which Python writes, are not JSON numbers),
//     or that has data after the object, or is truncated;
//   - a key given twice in one object, at any depth;
//   - a key that is not a field of the target struct, and one that matches a
//     field only when case is ignored (reported as such);
//   - nesting deeper than MaxDepth, and documents larger than the size cap;
//   - optionally, a missing or unsupported top-level "version".
//
// Then it decodes with encoding/json.Unmarshal (in place: the document is
// not copied again), and a type error (a string where a number belongs, a
// number beyond float32) is reported with its JSON path too.
//
// Order of the refusals: a document that is not well-formed JSON (syntax,
// duplicates, depth, trailing data) is refused first; then its version, so a
// newer document says "version 3" rather than failing on a field the newer
// format added; then unknown and case-folded keys, in document order; then
// type errors.
//
// Bounds: the whole document is held in memory (it is read with a cap: see
// Options.MaxBytes, DefaultMaxBytes), and the walk is iterative, so time and
// memory are linear in the size whatever the nesting. Subtrees whose target
// type has no object anywhere inside (arrays of numbers, such as histogram
// bins or score bins) are skipped at the scanner's speed: no key can hide in
// them, and anything but the expected numbers there is a decode error.
package strictjson
