"""The loopback server's DIRAC configuration (dev/loopback/config.py)."""

from pathlib import Path

from diraccfg import CFG

from dev.loopback import config

PORTS = {key: 20000 + i for i, key in enumerate(f"{s}/{n}" for s, n in config.SERVICES)}
EP = config.Endpoints(PORTS, "127.0.0.1", 3306, "Dirac", 9200)
ROOTS = config.Roots(Path("/srv/loopback"))


def test_every_service_is_dips_with_its_template_authorization():
    cs = config.master_cs(ROOTS, EP, config.ExtraConfig())
    for system, service in config.SERVICES:
        section = cs["Systems"][system]["Services"][service]
        assert section["Protocol"] == "dips"
        assert section["Port"] == str(PORTS[f"{system}/{service}"])
        assert cs["Systems"][system]["URLs"][service] == EP.url(system, service)
    # Taken from DIRAC's ConfigTemplate.cfg, not written here.
    assert "setPilotStatus" in cs.getAsDict("Systems/WorkloadManagement/Services/PilotManager/Authorization")
    assert cs.getOption("Systems/WorkloadManagement/Executors/Optimizers/Load").startswith("JobPath")


def test_database_secrets_stay_in_the_server_local_file():
    local = config.server_local_cfg(ROOTS, EP, "s3cret")
    cs = config.master_cs(ROOTS, EP, config.ExtraConfig())
    assert local.getOption("Systems/Databases/Password") == "s3cret"
    assert "s3cret" not in str(cs)
    assert cs.getOption("Systems/WorkloadManagement/Databases/JobDB/DBName") == "JobDB"


def test_extra_configuration_is_merged_last():
    extra = (
        "Resources\n{\n  Sites\n  {\n    CLOUD\n    {\n      CLOUD.Loopback.local\n      {\n"
        "        CE = loopback-ce, cloud-ce\n      }\n    }\n  }\n}\n"
    )
    cs = config.master_cs(ROOTS, EP, config.ExtraConfig(cs=[extra]))
    assert cs.getOption(f"Resources/Sites/CLOUD/{config.SITE}/CE") == "loopback-ce, cloud-ce"
    assert cs.getOption(f"Resources/Sites/CLOUD/{config.SITE}/CEs/{config.DIRECT_CE}/CEType") == "InProcess"


def test_pilots_get_the_loopback_pilot_files_and_environment():
    cs = config.master_cs(ROOTS, EP, config.ExtraConfig())
    pilot = cs.getAsDict("Operations/Defaults/Pilot")
    assert pilot["pilotFileServer"] == "file:/srv/loopback/pilotfiles"
    assert pilot["PreinstalledEnv"] == "/srv/loopback/pilotfiles/diracosrc"
    assert pilot["GenericPilotGroup"] == config.PILOT_GROUP
    assert isinstance(CFG().loadFromBuffer(str(cs)), CFG)
