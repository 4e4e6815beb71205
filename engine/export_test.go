package engine

// SetStretchSize makes RunRecords read stretches of n bytes until the
// returned function restores the size: small stretches cut many records.
func SetStretchSize(n int) (restore func()) {
	old := stretchSize
	stretchSize = n
	return func() { stretchSize = old }
}
