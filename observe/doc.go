// Package observe is what the loader tells its operator: one Logger that
// stamps every line with the time since loader entry and a level and tees
// it to sinks (ConOut, a serial port, the block-IO Ring on a scratch disk);
// the scratch disk format and its recovery on the host (ring.go); per-actor
// throughput sampled from the supervisor's counters (Sampler); the boot
// Timeline; download Progress lines and the final Failure block.
//
// Nothing here touches the firmware: the sinks are io.Writers and the ring
// writes through a BlockDevice, so everything runs in host tests. Package
// observe/efi attaches the logger to the firmware's devices.
package observe
