//go:build !linux

package modelio

import "errors"

// hugeCopy is Linux's (transparent huge pages): elsewhere the tables stay
// where they are.
func hugeCopy(b []byte) ([]byte, func() error, error) {
	return nil, nil, errors.New("transparent huge pages are a Linux feature")
}

// populatePages is Linux's (MADV_POPULATE_READ): elsewhere tables fault in
// as they are used.
func populatePages(b []byte) {}
