// Package modeltest holds test networks' pieces that several packages'
// tests share: ProjDot, an interaction with a layer of its own.
package modeltest
