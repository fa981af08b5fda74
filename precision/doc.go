// Package precision is rq's one vocabulary of numeric precisions: the
// names a plan's JSON, a quantized file's rq.layers metadata, a search
// ladder and a cost model use for how a layer's weights are stored, and
// the facts about each (bits per weight, integer or not, which layers can
// hold it). Every name read from outside goes through Parse (directly, or
// through Precision's UnmarshalText), so an unknown precision is refused
// in one place with one error type, *UnknownError, whatever it came from.
//
// The facts live in one table indexed by the constants, not in switches
// spread over the packages that use them, so that adding a precision is a
// constant and a table row (the MX table formats of issue 15 were added so).
//
// The package imports nothing of rq: kernels, model, quantize, modelio,
// search and debug all sit above it.
package precision
