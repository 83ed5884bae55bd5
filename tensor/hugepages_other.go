//go:build !linux

package tensor

// AdviseHugePages is a no-op outside Linux; see hugepages_linux.go.
func AdviseHugePages[E any](s []E, collapse bool) {}
