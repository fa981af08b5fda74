//go:build !amd64 || purego

package kernels

// mxBagArchImpls is empty without assembly: only the pure-Go MX bag is built.
var mxBagArchImpls []impl[mxBagFn]
