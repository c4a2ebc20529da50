// Package aip implements the parts of Google's API design rules that every
// Pylee service shares: resource names (AIP-122), opaque page tokens
// (AIP-158), update masks (AIP-134) and etags (AIP-154).
package aip
