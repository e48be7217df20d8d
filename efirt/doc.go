// Package efirt is the in-image Linux personality that lets the stock Go
// runtime, built for GOOS=linux, run inside UEFI Boot Services.
//
// The build (efirt/build) rewrites every system-call instruction of the
// runtime and std into a call to efirt's trap, and injects an import of this
// package into the main package. The firmware enters the image at
// efirt_entry; efirt builds a Linux process start on a stack of its own and
// jumps into the runtime's Linux entry point. From then on the runtime's
// "system calls" are served here, on UEFI Boot Services: memory from
// AllocatePages, cooperative threads on one CPU, futexes, clocks from the
// CPU counter and the RTC, randomness, console output, and enough epoll and
// eventfd for the netpoller.
//
// The code below the trap is the kernel. It runs on per-thread kernel stacks
// under a fake g, with interrupts masked, so it never allocates, never takes
// a write barrier (kernel state holds no Go pointers) and never enters the Go
// scheduler. Ordinary goroutines reach the firmware through Call, which is a
// system call like any other.
package efirt
