// Package drivers is the DPU vendor plugin boundary. A driver supplies the
// vendor-specific halves of networking (host function -> representor, SF
// lifecycle) and storage (bdev -> emulated NVMe on a host function); the
// generic mechanisms live in network/ and storage/.
package drivers

// Driver is one DPU vendor's implementation.
type Driver struct {
	// Name is the [dpu] driver value that selected it.
	Name    string
	Network NetworkDriver
	Storage StorageDriver
}
