//go:build arm64 || riscv64 || loong64

package efirt

// Linux system-call numbers of the generic table (asm-generic/unistd.h),
// which arm64, riscv64 and loong64 share, as the runtime and std issue them.
// There is no open, epoll_wait or arch_prctl: the runtime calls the *at and
// pwait variants, and keeps g in a register.
const (
	sysFaccessat       = 48
	sysOpenat          = 56
	sysClose           = 57
	sysPipe2           = 59
	sysRead            = 63
	sysWrite           = 64
	sysPread64         = 67
	sysEventfd2        = 19
	sysEpollCreate1    = 20
	sysEpollCtl        = 21
	sysEpollPwait      = 22
	sysFcntl           = 25
	sysIoctl           = 29
	sysExit            = 93
	sysExitGroup       = 94
	sysFutex           = 98
	sysNanosleep       = 101
	sysSetitimer       = 103
	sysTimerCreate     = 107
	sysTimerSettime    = 110
	sysTimerDelete     = 111
	sysClockGettime    = 113
	sysSchedGetaffin   = 123
	sysSchedYield      = 124
	sysKill            = 129
	sysTkill           = 130
	sysTgkill          = 131
	sysSigaltstack     = 132
	sysRtSigaction     = 134
	sysRtSigprocmask   = 135
	sysRtSigreturn     = 139
	sysUname           = 160
	sysPrctl           = 167
	sysGetpid          = 172
	sysGettid          = 178
	sysBrk             = 214
	sysMunmap          = 215
	sysClone           = 220
	sysMmap            = 222
	sysMprotect        = 226
	sysMincore         = 232
	sysMadvise         = 233
	sysPrlimit64       = 261
	sysGetrandom       = 278
	sysEpollPwait2     = 441
	sysMaxKnown        = 512
	sysFirmwareCall    = 0x0ef1 // efirt's own: Call from a goroutine
	sysForeignCall     = 0x0ef2 // efirt's own: CallForeign
	epollEventSize     = 16     // struct epoll_event is naturally aligned here
	pageSize           = 4096
	firmwareStackBytes = 256 << 10
)
