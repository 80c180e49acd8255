// Package softhsm makes throwaway SoftHSM2 tokens, so that tests can run
// pgseal's PKCS#11 master-key source against a real PKCS#11 module.
//
// Tests call NewTB, which writes a SoftHSM2 configuration whose token
// directory is under the test's temporary directory, points SOFTHSM2_CONF
// at it for the rest of the test (so the test cannot be parallel: the
// module reads that variable when it is initialized), and initializes one
// token. InitToken adds more tokens; Env gives the variables a child
// process needs. Module finds the SoftHSM2 library.
//
// When SoftHSM2 is not installed, NewTB fails the test with a message that
// says how to install it (`make test` does, through
// scripts/install-deps.sh); it never skips.
//
// It does not manage real HSMs or long-lived tokens.
package softhsm
