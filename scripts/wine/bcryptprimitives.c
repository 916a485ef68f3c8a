/* Wine 8 has no bcryptprimitives.dll, which Rust's std imports for ProcessPrng (its source of
 * random bytes on Windows): without it no Rust program for Windows starts under Wine. This
 * stand-in forwards to BCryptGenRandom with the system's preferred RNG, which Wine implements.
 * scripts/wine-env.sh builds it into a private Wine prefix only; nothing on Windows uses it. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* BCryptGenRandom takes a ULONG length: larger requests go in pieces. */
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
