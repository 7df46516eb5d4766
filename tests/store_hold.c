/*
 * store_hold: hold a store's write lock, as another process writing it
 * would, for tests of what strata does meanwhile.
 *   store_hold DB SECONDS   prints "locked" once it holds the lock,
 *                           then releases it after SECONDS
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	if (argc != 3) {
		fprintf(stderr, "usage: store_hold DB SECONDS\n");
		return 2;
	}
	if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "store_hold: %s: %s\n", argv[1], msg ? msg : sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	printf("locked\n");
	fflush(stdout);
	sleep((unsigned)atoi(argv[2]));
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return 0;
}
