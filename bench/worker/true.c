/* SPDX-License-Identifier: Apache-2.0 */
/* The floor: a program that links only libc and does nothing. */
int main(void)
{
	return 0;
}
