package drivers

// StorageDriver is the vendor half of volume exposure. (Refined by the storage work.)
type StorageDriver interface{}
