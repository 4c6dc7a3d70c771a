/* test_dist_nompi.c: the process group as a build without Open MPI compiles
 * it (src/core/dist.c with PT_HAVE_MPI unset, whatever this build has):
 *   - with no launcher in the environment ptune runs alone: init succeeds
 *     and the world is rank 0 of 1;
 *   - under a launcher of one process (OMPI_COMM_WORLD_SIZE=1) it runs alone too;
 *   - under a launcher of several (OMPI_COMM_WORLD_SIZE=2, or PMI_SIZE=4, or
 *     PMIX_RANK without a size) init fails with a one-line message that the
 *     binary has no MPI support and how to get it;
 *   - every collective of a group of one is a copy (sum, agree, gather). */
#include "pt_test.h"

#undef PT_HAVE_MPI
#include "core/dist.c"

static void clear_launcher(void) {
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMIX_RANK");
    unsetenv("PMI_SIZE");
    unsetenv("PMI_RANK");
}

TEST(nompi_plain_runs_alone) {
    clear_launcher();
    int argc = 1;
    char *args[] = {"ptune", NULL}, **argv = args;
    CHECK(!pt_dist_available(), "this copy of dist.c was built with MPI");
    CHECK(pt_dist_launched() == NULL, "a launcher variable is set: %s", pt_dist_launched());
    CHECK(pt_dist_init(&argc, &argv) == 0, "%s", pt_last_error());
    const pt_group *w = pt_group_world();
    CHECK(w->rank == 0 && w->size == 1 && !w->comm, "world %d/%d", w->rank, w->size);
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
    CHECK(pt_dist_init(&argc, &argv) == 0, "one process under mpirun: %s", pt_last_error());
    clear_launcher();
    return 0;
}

TEST(nompi_launcher_refused) {
    int argc = 1;
    char *args[] = {"ptune", NULL}, **argv = args;
    static const char *env[][2] = {{"OMPI_COMM_WORLD_SIZE", "2"}, {"PMI_SIZE", "4"}, {"PMIX_RANK", "0"}};
    for (int i = 0; i < 3; i++) {
        clear_launcher();
        setenv(env[i][0], env[i][1], 1);
        pt_clear_error();
        int rc = pt_dist_init(&argc, &argv);
        const char *e = pt_last_error();
        printf("  %s=%s: %s\n", env[i][0], env[i][1], e);
        CHECK(rc == PT_ERR && strstr(e, "no MPI support") && strstr(e, env[i][0]) && strstr(e, "libopenmpi-dev") &&
                  !strchr(e, '\n'),
              "%s=%s: init gave %d, '%s'", env[i][0], env[i][1], rc, e);
    }
    clear_launcher();
    return 0;
}

TEST(nompi_collectives_are_copies) {
    const pt_group *w = pt_group_world();
    double x[3] = {1.5, -2, 3};
    float y[2] = {0.25f, 7};
    CHECK(pt_group_sum_f64(w, x, 3) == 0 && x[0] == 1.5 && x[1] == -2 && x[2] == 3, "sum changed a value");
    CHECK(pt_group_sum_f32(w, y, 2) == 0 && y[0] == 0.25f && y[1] == 7, "sum changed a value");
    CHECK(pt_group_agree(w, 0) == 0, "agree on success");
    pt_set_error("mine");
    CHECK(pt_group_agree(w, PT_ERR) == PT_ERR && !strcmp(pt_last_error(), "mine"), "agree: '%s'", pt_last_error());
    int32_t v[4] = {4, 3, 2, 1};
    void *out = NULL;
    int64_t n = 0;
    CHECK(pt_group_gather(w, v, 4, sizeof v[0], &out, &n) == 0 && n == 4 && !memcmp(out, v, sizeof v), "gather");
    free(out);
    CHECK(pt_group_barrier(w) == 0 && pt_group_bcast(w, v, sizeof v, 0) == 0, "barrier, bcast");
    return 0;
}

int main(void) {
    PT_RUN(nompi_plain_runs_alone);
    PT_RUN(nompi_launcher_refused);
    PT_RUN(nompi_collectives_are_copies);
    return PT_DONE();
}
