package drivers

// NetworkDriver is the vendor half of VIF plugging. (Refined by the network work.)
type NetworkDriver interface{}
