/* Wine 8 has no bcryptprimitives.dll, whose ProcessPrng the Rust standard
 * library imports on Windows. This stand-in provides it on top of
 * RtlGenRandom (advapi32's SystemFunction036) so test binaries run. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
