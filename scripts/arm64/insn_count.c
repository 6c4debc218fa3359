/*
 * qemu TCG plugin: counts the guest instructions a user-mode process executes.
 *
 * Each translated block gets an inline "add n_insns" on entry, so the count costs no helper call per
 * instruction; a block left early by a fault or signal is over-counted by its tail, which is negligible for
 * straight-line compute kernels. The total is written at exit to the file named by out=PATH (stderr if not
 * given) as "insns N".
 *
 * Built against the qemu-plugin.h of the installed qemu by scripts/arm64/insn_count.sh.
 */
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t executed;
static char out_path[4096];

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    FILE *out = out_path[0] ? fopen(out_path, "w") : stderr;
    if (out == NULL) {
        fprintf(stderr, "insn_count: cannot write %s\n", out_path);
        out = stderr;
    }
    fprintf(out, "insns %llu\n", (unsigned long long)executed);
    if (out != stderr) {
        fclose(out);
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out_path, sizeof(out_path), "%s", argv[i] + 4);
        } else {
            fprintf(stderr, "insn_count: unknown option %s\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
