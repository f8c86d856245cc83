"""`edge-agent import modbus-map`: a register map from a spreadsheet becomes sensors that
`validate` accepts; every address numbering; every kind of bad row reported at its place
(issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.config.modbus_map import MapError, convert
from edge_agent.config.sensor_ids import sensor_id
from tests.config.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "configs" / "examples" / "modbus-map.csv"


def registers(text: str, addressing: str | None = None) -> dict[str, tuple[str, int]]:
    converted = convert(text, "map.csv", "plc", addressing)  # type: ignore[arg-type]
    assert [p for p in converted.problems if p.is_error] == []
    return {
        key: (s["register"]["table"], s["register"]["address"])
        for key, s in converted.sensors.items()
    }


def test_every_address_numbering_names_the_same_register() -> None:
    """Holding register 21 of a manual is protocol address 20 in every numbering."""
    assert registers("name,address0,table\nt,20,holding\n") == {"t": ("holding", 20)}
    assert registers("name,address1,table\nt,21,Holding\n") == {"t": ("holding", 20)}
    assert registers("name,modicon\nt,40021\nu,400021\n") == {
        "t": ("holding", 20),
        "u": ("holding", 20),
    }
    assert registers("name,modicon\na,30001\nb,00007\nc,10002\n") == {
        "a": ("input", 0),
        "b": ("coil", 6),
        "c": ("discrete", 1),
    }
    assert registers("name,address,table\nt,21,holding\n", "one") == {"t": ("holding", 20)}
    assert registers("name,address,table\nt,21,holding\n", "zero") == {"t": ("holding", 21)}


def test_an_address_column_that_does_not_say_its_numbering_is_refused_with_the_fix() -> None:
    with pytest.raises(MapError, match=r"map.csv:1:2: `address` does not say its numbering"):
        convert("name,address,table\nt,21,holding\n", "map.csv", "plc")
    with pytest.raises(MapError, match="needs a `name` column"):
        convert("tag,modicon\nt,40001\n", "map.csv", "plc")
    with pytest.raises(MapError, match="one address column"):
        convert("name,modicon,address1\nt,40001,1\n", "map.csv", "plc")
    with pytest.raises(MapError, match="empty file"):
        convert("", "map.csv", "plc")


BAD = """\
name,address1,table,type,order,word_order,scale,unit_id,bit,colour
good one,1,holding,float32,CDAB,,0.5,,,red
,2,holding,,,,,,,
bad address,x,holding,,,,,,,
too far,65537,holding,,,,,,,
no table,3,,,,,,,,
unknown table,3,registers,,,,,,,
unknown type,4,holding,double_int,,,,,,
bad order,5,holding,float32,ABDC,,,,,
bad word order,5,holding,float32,,middle,,,,
comma,6,holding,,,,"0,1",,,
not a number,6,holding,,,,ten,,,
infinite,6,holding,,,,inf,,,
unit id text,7,holding,,,,,two,,
unit id range,7,holding,,,,,300,,
bit too big,8,holding,,,,,,16,
Good One,9,holding,,,,,,,

good two,10,input,uint16,,,,,,
"""


def test_every_bad_row_is_reported_at_its_place_and_the_rest_converted() -> None:
    converted = convert(BAD, "map.csv", "plc", None)
    lines = [
        f"{p.line}:{p.col}: {p.severity}: {p.path[0]}: {p.message}" for p in converted.problems
    ]
    assert lines == [
        "1:10: warning: colour: unknown column, ignored",
        "3:1: error: name: a name with at least one letter or digit is required",
        "4:2: error: address1: 'x' is not a register number",
        "5:2: error: address1: 65537 is outside 1..65536",
        "6:3: error: table: a table (holding, input, coil or discrete) is required",
        "7:3: error: table: 'registers': a table (holding, input, coil or discrete) is required",
        "8:4: error: type: 'double_int' is not a type; one of bool, float32, float64, int16, "
        "int32, int64, string, uint16, uint32, uint64",
        "9:5: error: order: 'ABDC': ABCD, CDAB, BADC or DCBA",
        "10:6: error: word_order: 'middle': big or little",
        "11:7: error: scale: '0,1': write the decimal point as a dot",
        "12:7: error: scale: 'ten' is not a number",
        "13:7: error: scale: 'inf' is not a finite number",
        "14:8: error: unit_id: 'two' is not a whole number",
        "15:8: error: unit_id: unit_id: Input should be less than or equal to 255",
        "16:9: error: bit: register.bit: Input should be less than or equal to 15",
        "17:1: error: name: sensor id 'good_one' is already made by row 2",
    ]
    assert list(converted.sensors) == ["good_one", "good_two"]
    assert converted.rows == 18 - 1  # the empty line is no row
    assert converted.sensors["good_one"] == {
        "connection": "plc",
        "register": {
            "table": "holding",
            "address": 0,
            "type": "float32",
            "word_order": "little",
            "byte_order": "big",
        },
        "scale": {"factor": 0.5},
    }


def test_a_modicon_number_and_a_table_that_disagree_are_refused() -> None:
    converted = convert("name,modicon,table\nt,30001,holding\n", "map.csv", "plc", None)
    assert [p.message for p in converted.problems] == ["'holding', but 30001 is in the input table"]


@pytest.mark.parametrize(
    ("name", "key"),
    [("P-101 Bearing Temp (°C)", "p_101_bearing_temp_c"), ("1st stage", "s_1st_stage")],
)
def test_sensor_ids_are_valid_and_stable(name: str, key: str) -> None:
    assert sensor_id(name) == key


def test_the_sample_map_imports_and_the_site_file_that_includes_it_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sensors" / "modbus.yaml"
    out.parent.mkdir()
    assert main(["import", "modbus-map", str(SAMPLE), "-o", str(out)]) == 0
    assert "5 sensors from 5 rows" in capsys.readouterr().err
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\n"
        "site: {id: plant-9, name: Plant 9}\n"
        "include: [sensors/modbus.yaml]\n"
        "connections:\n"
        "  plc: {protocol: modbus-tcp, host: 127.0.0.1, port: 5020}\n"
        "forwarding: {mode: maintainx, maintainx: {api_key: '${MAINTAINX_API_KEY}'}}\n"
    )
    assert main(["validate", "--skip-host-checks", str(site)]) == 0, capsys.readouterr()
    assert "no problems" in capsys.readouterr().err
    # Never over an existing file.
    assert main(["import", "modbus-map", str(SAMPLE), "-o", str(out)]) == 2
    assert "exists; not overwritten" in capsys.readouterr().err


def test_refused_rows_exit_1_and_print_in_the_validators_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "map.csv"
    bad.write_text("\ufeffname,modicon\nok,40001\nbad,50001\n")  # with Excel's BOM
    assert main(["import", "modbus-map", str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"{bad}:3:2: error: modicon: 50001 is not a Modicon number" in captured.err
    assert "ok:\n" in captured.out and "bad" not in captured.out


def test_a_european_excel_map_semicolons_decimal_commas_and_windows_1252_imports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Excel set to a European locale saves `CSV (semicolon)` in the Windows code page."""
    eu = tmp_path / "map.csv"
    eu.write_bytes("name;modicon;scale;unit\nP1 temp;40001;0,1;°C\n".encode("cp1252"))
    assert main(["import", "modbus-map", str(eu)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "factor: 0.1" in out and "unit: °C" in out


def test_a_digit_that_is_not_ascii_is_a_bad_cell_not_a_crash() -> None:
    converted = convert("name,modicon\nx,4²\ny,４０００１\n", "map.csv", "plc")
    assert [(p.line, p.col) for p in converted.problems] == [(2, 2), (3, 2)]
    assert converted.sensors == {}


def test_a_column_named_twice_is_refused_not_silently_the_last() -> None:
    with pytest.raises(MapError, match=r"map.csv:1:4: `unit` is named twice \(columns 3 and 4\)"):
        convert("name,modicon,unit,Unit\nx,40001,bar,psi\n", "map.csv", "plc")


def test_a_modicon_number_past_the_last_register_is_reported_in_its_column() -> None:
    converted = convert("name,modicon\nx,465537\n", "map.csv", "plc")
    assert [(p.line, p.col, p.path) for p in converted.problems] == [(2, 2, ("modicon",))]


def test_a_map_whose_result_the_site_file_loader_would_refuse_is_not_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_agent.config import yaml_reader

    # Stands for 100,000 rows, whose 15 MB the loader refuses (10 MiB at most).
    monkeypatch.setattr(yaml_reader, "MAX_FILE_BYTES", 2000)
    big = tmp_path / "map.csv"
    big.write_text("name,modicon\n" + "".join(f"tag {i},{40001 + i}\n" for i in range(100)))
    out = tmp_path / "modbus.yaml"
    assert main(["import", "modbus-map", str(big), "-o", str(out)]) == 2
    assert "larger than 2000 bytes, the most a site file may hold" in capsys.readouterr().err
    assert not out.exists()


def test_an_output_in_a_folder_that_is_not_there_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sensors" / "modbus.yaml"  # `sensors/` not made yet
    assert main(["import", "modbus-map", str(SAMPLE), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out}: cannot write:" in err and "Traceback" not in err


def test_a_register_the_model_refuses_is_reported_at_the_cell_to_change() -> None:
    """Not at column 1 (`name`) under `table:`, a column this map does not have."""
    text = (
        "name,modicon,type,length,bit\n"
        "a,40001,string,,\n"
        "b,40002,float32,,3\n"
        "c,40003,int16,4,\n"
        "h,00001,float32,,\n"
        "j,465536,float64,,\n"
    )
    converted = convert(text, "map.csv", "plc")
    assert [(p.line, p.col, p.path) for p in converted.problems] == [
        (2, 4, ("length",)),
        (3, 5, ("bit",)),
        (4, 4, ("length",)),
        (5, 3, ("type",)),
        (6, 2, ("modicon",)),
    ]
    assert all("Value error" not in p.message for p in converted.problems)


def test_a_tab_separated_map_as_excel_saves_text_imports() -> None:
    converted = convert("name\tmodicon\tscale\nP1 temp\t40001\t0,5\n", "map.txt", "plc")
    assert converted.problems == []
    assert converted.sensors["p1_temp"]["scale"] == {"factor": 0.5}
