// Package evaluate is the evaluation loop every rq workflow shares: stream a
// click log through a model (and optionally a baseline model on the very same
// rows, read once), accumulate the metrics, and time the forward pass.
//
// rq eval reports it; search, debug and monitor call it for each plan or
// snapshot. It lives apart from metrics (which knows nothing of models) and
// from cmd (which only wires flags to it).
package evaluate
