//go:build !linux

package modelio

import "errors"

// hugeCopy is Linux's (transparent huge pages): elsewhere the tables stay
// where they are.
func hugeCopy(b []byte) ([]byte, func() error, error) {
	return nil, nil, errors.New("transparent huge pages are a Linux feature")
}
